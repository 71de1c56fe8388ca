//! The fleet overview's state: every host of the tenants shown, with the latest value of each
//! of its resources, kept current by the live stream, and the rows the page shows (searched and
//! sorted).
//!
//! Ages and statuses are told by the server's clock: each answer of `GET /api/v1/fleet` says
//! what time the server had, and the offset to the browser's clock is kept per tenant, so a
//! browser whose clock is off still tells online from offline. A host's status is core's
//! [`HostStatus::of`], the rule the server uses.

use std::collections::BTreeMap;

use microdash_core::api::{FleetOut, HostOut, PointOut};
use microdash_core::fleet::{HostStatus, INTERVAL_METRIC};

use super::parse_millis;

/// One host's latest values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Host {
    /// Its tenant (slug).
    pub tenant: String,
    /// The agent id.
    pub agent_id: String,
    /// When it last reported, by the server's clock (Unix ms).
    pub last_seen_ms: i64,
    /// The interval it announced, seconds.
    pub interval_s: Option<f64>,
    /// CPU in use, percent.
    pub cpu: Option<f64>,
    /// Memory in use, percent.
    pub mem: Option<f64>,
    /// Memory in use, bytes.
    pub mem_bytes: Option<f64>,
    /// Disk use per mount, percent.
    pub disks: BTreeMap<String, f64>,
    /// Bytes per second received.
    pub rx: Option<f64>,
    /// Bytes per second sent.
    pub tx: Option<f64>,
    /// Seconds since boot, as of `uptime_at_ms`.
    pub uptime_s: Option<f64>,
    /// When the uptime was measured (Unix ms).
    pub uptime_at_ms: i64,
    /// Load average over a minute.
    pub load: Option<f64>,
    /// Alerts that fire on it.
    pub firing_alerts: usize,
}

impl Host {
    /// The fullest disk: its use and its mount.
    pub fn disk(&self) -> Option<(f64, &str)> {
        self.disks.iter().map(|(m, v)| (*v, m.as_str())).max_by(|a, b| a.0.total_cmp(&b.0))
    }

    /// Its status at the server time `server_now_ms`.
    pub fn status(&self, server_now_ms: i64) -> HostStatus {
        HostStatus::of(server_now_ms - self.last_seen_ms, self.interval_s)
    }

    /// Its uptime now (the last report's, plus the time since, while it reports).
    pub fn uptime_now(&self, server_now_ms: i64) -> Option<f64> {
        self.uptime_s.map(|s| s + ((server_now_ms - self.uptime_at_ms).max(0) / 1000) as f64)
    }

    /// Take one point of the host (a fleet metric; others are ignored). Returns whether a
    /// value changed.
    fn take(&mut self, metric: &str, tags: &BTreeMap<String, String>, ts_ms: i64, value: f64) -> bool {
        let slot = match metric {
            "cpu.usage_percent" => &mut self.cpu,
            "mem.used_percent" => &mut self.mem,
            "mem.used_bytes" => &mut self.mem_bytes,
            "net.rx_bytes_per_s" => &mut self.rx,
            "net.tx_bytes_per_s" => &mut self.tx,
            "load.1m" => &mut self.load,
            "uptime_s" => {
                self.uptime_at_ms = ts_ms;
                &mut self.uptime_s
            }
            INTERVAL_METRIC => {
                let interval = Some(value).filter(|s| s.is_finite() && *s > 0.0);
                let changed = self.interval_s != interval;
                self.interval_s = interval;
                return changed;
            }
            "disk.used_percent" => {
                let mount = tags.get("mount").cloned().unwrap_or_default();
                return self.disks.insert(mount, value) != Some(value);
            }
            _ => return false,
        };
        let changed = *slot != Some(value);
        *slot = Some(value);
        changed
    }

    fn from_out(tenant: &str, host: &HostOut) -> Host {
        let mut out = Host {
            tenant: tenant.to_owned(),
            agent_id: host.agent_id.clone(),
            last_seen_ms: parse_millis(&host.last_seen).unwrap_or(0),
            interval_s: host.interval_s,
            firing_alerts: host.firing_alerts,
            ..Host::default()
        };
        for latest in &host.latest {
            let ts = parse_millis(&latest.timestamp).unwrap_or(0);
            out.take(&latest.metric_name, &latest.tags, ts, latest.value);
        }
        out
    }
}

/// One tenant's hosts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantFleet {
    /// By agent id.
    pub hosts: BTreeMap<String, Host>,
    /// The server's clock minus the browser's, from the last answer.
    pub clock_offset_ms: i64,
    /// Loaded at least once.
    pub loaded: bool,
}

/// What the page sorts by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortKey {
    /// Worst first: offline, stale, then online; then by name.
    #[default]
    Status,
    /// Host name.
    Name,
    /// CPU in use.
    Cpu,
    /// Memory in use.
    Memory,
    /// The fullest disk.
    Disk,
    /// Network, received plus sent.
    Network,
    /// Uptime.
    Uptime,
    /// Last report.
    LastSeen,
    /// Firing alerts.
    Alerts,
}

impl SortKey {
    /// Every key, in the order the table's columns go.
    pub const ALL: [SortKey; 9] = [
        SortKey::Name,
        SortKey::Status,
        SortKey::Cpu,
        SortKey::Memory,
        SortKey::Disk,
        SortKey::Network,
        SortKey::Uptime,
        SortKey::LastSeen,
        SortKey::Alerts,
    ];

    /// The column's name.
    pub fn label(self) -> &'static str {
        match self {
            SortKey::Status => "Status",
            SortKey::Name => "Host",
            SortKey::Cpu => "CPU",
            SortKey::Memory => "Memory",
            SortKey::Disk => "Disk",
            SortKey::Network => "Network",
            SortKey::Uptime => "Uptime",
            SortKey::LastSeen => "Last seen",
            SortKey::Alerts => "Alerts",
        }
    }

    /// The form value (`?sort=`).
    pub fn key(self) -> &'static str {
        match self {
            SortKey::Status => "status",
            SortKey::Name => "name",
            SortKey::Cpu => "cpu",
            SortKey::Memory => "memory",
            SortKey::Disk => "disk",
            SortKey::Network => "network",
            SortKey::Uptime => "uptime",
            SortKey::LastSeen => "last_seen",
            SortKey::Alerts => "alerts",
        }
    }

    /// The key of a form value.
    pub fn parse(key: &str) -> Option<SortKey> {
        SortKey::ALL.into_iter().find(|k| k.key() == key)
    }

    /// The direction a first click sorts in: the worst (busiest, fullest, oldest) first, names
    /// A to Z.
    pub fn default_descending(self) -> bool {
        !matches!(self, SortKey::Name | SortKey::Status)
    }
}

/// How the rows go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    /// By what.
    pub key: SortKey,
    /// Largest first (for status: healthiest first).
    pub descending: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Sort { key: SortKey::Status, descending: false }
    }
}

impl Sort {
    /// The sort after a click on `key`'s column: the other direction of the same key, or
    /// that key's first direction.
    pub fn toggle(self, key: SortKey) -> Sort {
        if self.key == key {
            Sort { key, descending: !self.descending }
        } else {
            Sort { key, descending: key.default_descending() }
        }
    }
}

/// One row of the table, with what it shows at the moment it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The host.
    pub host: Host,
    /// Its status now.
    pub status: HostStatus,
    /// Time since its last report, ms.
    pub age_ms: i64,
    /// Its uptime now, seconds.
    pub uptime_s: Option<f64>,
}

/// Counts of a tenant's hosts per status, and its firing alerts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Online hosts.
    pub online: usize,
    /// Stale hosts.
    pub stale: usize,
    /// Offline hosts.
    pub offline: usize,
    /// Firing alerts on its hosts.
    pub firing: usize,
}

/// Every tenant's hosts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fleet {
    tenants: BTreeMap<String, TenantFleet>,
    version: u64,
}

impl Fleet {
    /// Take an answer of `GET /api/v1/fleet` that arrived when the browser's clock said
    /// `client_now_ms`: it replaces what was known of the tenant, except values that live
    /// points brought since it was asked for (newer than the answer's).
    pub fn load(&mut self, answer: &FleetOut, client_now_ms: i64) {
        let server_now = parse_millis(&answer.server_time).unwrap_or(client_now_ms);
        let tenant = self.tenants.entry(answer.tenant.clone()).or_default();
        tenant.clock_offset_ms = server_now - client_now_ms;
        tenant.loaded = true;
        let mut hosts = BTreeMap::new();
        for out in &answer.hosts {
            let mut host = Host::from_out(&answer.tenant, out);
            if let Some(known) = tenant.hosts.get(&out.agent_id).filter(|k| k.last_seen_ms > host.last_seen_ms) {
                // Live points overtook the answer: keep them.
                let firing = host.firing_alerts;
                host = known.clone();
                host.firing_alerts = firing;
            }
            hosts.insert(out.agent_id.clone(), host);
        }
        tenant.hosts = hosts;
        self.version = self.version.wrapping_add(1);
    }

    /// Take live points of `tenant` that arrived at `client_now_ms`: each host that sent one
    /// reported just now; fleet metrics update its values. A host not known yet joins. Returns
    /// whether anything changed.
    pub fn apply(&mut self, tenant: &str, points: &[PointOut], client_now_ms: i64) -> bool {
        let Some(fleet) = self.tenants.get_mut(tenant) else { return false };
        let server_now = client_now_ms + fleet.clock_offset_ms;
        let mut changed = false;
        for point in points {
            let Some(agent) = point.agent_id.as_deref() else { continue };
            let host = fleet.hosts.entry(agent.to_owned()).or_insert_with(|| {
                changed = true;
                Host { tenant: tenant.to_owned(), agent_id: agent.to_owned(), ..Host::default() }
            });
            if host.last_seen_ms < server_now {
                host.last_seen_ms = server_now;
                changed = true;
            }
            let ts = parse_millis(&point.timestamp).unwrap_or(server_now);
            changed |= host.take(&point.metric_name, &point.tags, ts, point.value);
        }
        if changed {
            self.version = self.version.wrapping_add(1);
        }
        changed
    }

    /// Bumped on every change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether `tenant`'s hosts have been loaded.
    pub fn loaded(&self, tenant: &str) -> bool {
        self.tenants.get(tenant).is_some_and(|t| t.loaded)
    }

    /// `tenant`'s hosts that match `query`, sorted, as of `client_now_ms`.
    pub fn rows(&self, tenant: &str, query: &str, sort: Sort, client_now_ms: i64) -> Vec<Row> {
        let Some(fleet) = self.tenants.get(tenant) else { return Vec::new() };
        let server_now = client_now_ms + fleet.clock_offset_ms;
        let query = query.trim().to_lowercase();
        let mut rows: Vec<Row> = fleet
            .hosts
            .values()
            .map(|host| Row {
                status: host.status(server_now),
                age_ms: server_now - host.last_seen_ms,
                uptime_s: host.uptime_now(server_now),
                host: host.clone(),
            })
            .filter(|row| matches(row, &query))
            .collect();
        rows.sort_by(|a, b| compare(a, b, sort));
        rows
    }

    /// Counts per status of `tenant`'s hosts (all of them, whatever the search), as of
    /// `client_now_ms`.
    pub fn summary(&self, tenant: &str, client_now_ms: i64) -> Summary {
        let Some(fleet) = self.tenants.get(tenant) else { return Summary::default() };
        let server_now = client_now_ms + fleet.clock_offset_ms;
        let mut summary = Summary::default();
        for host in fleet.hosts.values() {
            match host.status(server_now) {
                HostStatus::Online => summary.online += 1,
                HostStatus::Stale => summary.stale += 1,
                HostStatus::Offline => summary.offline += 1,
            }
            summary.firing += host.firing_alerts;
        }
        summary
    }
}

/// Whether a row matches a search (lowercase): every word must be in the host's name, its
/// tenant, its status, or a disk's mount; `firing` matches hosts with firing alerts.
fn matches(row: &Row, query: &str) -> bool {
    query.split_whitespace().all(|word| {
        row.host.agent_id.to_lowercase().contains(word)
            || row.host.tenant.to_lowercase().contains(word)
            || row.status.as_str() == word
            || (word == "firing" && row.host.firing_alerts > 0)
            || row.host.disks.keys().any(|m| m.to_lowercase().contains(word))
    })
}

fn compare(a: &Row, b: &Row, sort: Sort) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    // Hosts without a value go last whichever the direction.
    let by_value = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => {
            let order = x.total_cmp(&y);
            if sort.descending { order.reverse() } else { order }
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    let directed = |order: Ordering| if sort.descending { order.reverse() } else { order };
    let primary = match sort.key {
        SortKey::Name => directed(a.host.agent_id.cmp(&b.host.agent_id)),
        // Worst first unless reversed.
        SortKey::Status => directed(b.status.cmp(&a.status)),
        SortKey::Cpu => by_value(a.host.cpu, b.host.cpu),
        SortKey::Memory => by_value(a.host.mem, b.host.mem),
        SortKey::Disk => by_value(a.host.disk().map(|d| d.0), b.host.disk().map(|d| d.0)),
        SortKey::Network => by_value(net(&a.host), net(&b.host)),
        SortKey::Uptime => by_value(a.uptime_s, b.uptime_s),
        // Longest silent first when descending.
        SortKey::LastSeen => directed(a.age_ms.cmp(&b.age_ms)),
        SortKey::Alerts => directed(a.host.firing_alerts.cmp(&b.host.firing_alerts)),
    };
    primary.then_with(|| a.host.tenant.cmp(&b.host.tenant)).then_with(|| a.host.agent_id.cmp(&b.host.agent_id))
}

fn net(host: &Host) -> Option<f64> {
    match (host.rx, host.tx) {
        (None, None) => None,
        (rx, tx) => Some(rx.unwrap_or(0.0) + tx.unwrap_or(0.0)),
    }
}

/// A duration in its two largest units: `3d 4h`, `5h 12m`, `7m 3s`, `42s`.
pub fn format_uptime(seconds: f64) -> String {
    let s = seconds.max(0.0) as i64;
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use microdash_core::api::LatestOut;

    const NOW: &str = "2026-12-07T12:00:00.000Z";

    fn at(offset_s: i64) -> String {
        microdash_core::metric::format_millis(parse_millis(NOW).unwrap_or(0) + offset_s * 1000)
    }

    fn latest(metric: &str, value: f64) -> LatestOut {
        LatestOut { metric_name: metric.into(), tags: BTreeMap::new(), timestamp: at(0), value }
    }

    fn host(id: &str, seen_s_ago: i64, cpu: Option<f64>, firing: usize) -> HostOut {
        let mut values = vec![latest("agent.interval_s", 10.0), latest("mem.used_percent", 50.0)];
        values.extend(cpu.map(|c| latest("cpu.usage_percent", c)));
        HostOut {
            agent_id: id.into(),
            status: HostStatus::Online,
            last_seen: at(-seen_s_ago),
            interval_s: Some(10.0),
            latest: values,
            firing_alerts: firing,
        }
    }

    fn fleet() -> (Fleet, i64) {
        let mut fleet = Fleet::default();
        let answer = FleetOut {
            tenant: "acme".into(),
            server_time: NOW.into(),
            hosts: vec![host("web-1", 1, Some(40.0), 0), host("db-1", 30, Some(90.0), 2), host("edge-1", 600, None, 0)],
        };
        // The browser's clock is 5 minutes behind the server's.
        let client_now = parse_millis(NOW).unwrap_or(0) - 300_000;
        fleet.load(&answer, client_now);
        (fleet, client_now)
    }

    fn ids(rows: &[Row]) -> Vec<&str> {
        rows.iter().map(|r| r.host.agent_id.as_str()).collect()
    }

    #[test]
    fn rows_sort_by_any_column_with_hosts_without_a_value_last() {
        let (fleet, now) = fleet();
        let check = |key: SortKey, descending: bool, expected: &[&str]| {
            assert_eq!(ids(&fleet.rows("acme", "", Sort { key, descending }, now)), expected, "{key:?} {descending}");
        };
        check(SortKey::Status, false, &["edge-1", "db-1", "web-1"]);
        check(SortKey::Status, true, &["web-1", "db-1", "edge-1"]);
        check(SortKey::Name, false, &["db-1", "edge-1", "web-1"]);
        check(SortKey::Cpu, true, &["db-1", "web-1", "edge-1"]);
        check(SortKey::Cpu, false, &["web-1", "db-1", "edge-1"]);
        check(SortKey::LastSeen, true, &["edge-1", "db-1", "web-1"]);
        check(SortKey::Alerts, true, &["db-1", "edge-1", "web-1"]);
        assert_eq!(Sort::default().toggle(SortKey::Cpu), Sort { key: SortKey::Cpu, descending: true });
        assert!(!Sort { key: SortKey::Cpu, descending: true }.toggle(SortKey::Cpu).descending);
        assert_eq!(SortKey::parse(SortKey::LastSeen.key()), Some(SortKey::LastSeen));
    }

    #[test]
    fn search_matches_names_tenants_statuses_and_firing() {
        let (fleet, now) = fleet();
        let search =
            |q: &str| ids(&fleet.rows("acme", q, Sort { key: SortKey::Name, descending: false }, now)).join(",");
        assert_eq!(search("WEB"), "web-1");
        assert_eq!(search("acme"), "db-1,edge-1,web-1");
        assert_eq!(search("offline"), "edge-1");
        assert_eq!(search("firing"), "db-1");
        assert_eq!(search("acme stale"), "db-1");
        assert_eq!(search("nothing"), "");
        assert!(fleet.rows("other", "", Sort::default(), now).is_empty());
    }

    #[test]
    fn status_follows_the_servers_clock_and_the_announced_interval() {
        let (fleet, now) = fleet();
        let status = |client_now: i64| {
            fleet
                .rows("acme", "", Sort { key: SortKey::Name, descending: false }, client_now)
                .iter()
                .map(|r| r.status)
                .collect::<Vec<_>>()
        };
        // db-1 reported 30 s ago, every 10 s: stale; edge-1 10 minutes ago: offline; though
        // the browser's clock says every report is from the future.
        assert_eq!(status(now), [HostStatus::Stale, HostStatus::Offline, HostStatus::Online]);
        // A minute later web-1 has been silent for 61 s: offline too.
        assert_eq!(status(now + 60_000)[2], HostStatus::Offline);
        assert_eq!(fleet.summary("acme", now), Summary { online: 1, stale: 1, offline: 1, firing: 2 });
    }

    #[test]
    fn live_points_update_values_and_bring_hosts_back() {
        let (mut fleet, now) = fleet();
        let point = |agent: &str, metric: &str, value: f64, tags: &[(&str, &str)]| PointOut {
            metric_name: metric.into(),
            agent_id: Some(agent.into()),
            tags: tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            timestamp: at(1),
            value,
            ..PointOut::default()
        };
        let later = now + 1_000;
        assert!(fleet.apply("acme", &[point("edge-1", "cpu.usage_percent", 12.0, &[])], later));
        let edge = fleet.rows("acme", "edge", Sort::default(), later).remove(0);
        assert_eq!((edge.status, edge.host.cpu, edge.age_ms), (HostStatus::Online, Some(12.0), 0));
        fleet.apply(
            "acme",
            &[
                point("web-1", "disk.used_percent", 40.0, &[("mount", "/")]),
                point("web-1", "disk.used_percent", 85.0, &[("mount", "/data")]),
                point("new-1", "uptime_s", 3_600.0, &[]),
                point("web-1", "app.requests", 5.0, &[]),
            ],
            later,
        );
        let web = fleet.rows("acme", "web-1", Sort::default(), later).remove(0);
        assert_eq!(web.host.disk(), Some((85.0, "/data")));
        let new = fleet.rows("acme", "new-1", Sort::default(), later + 60_000).remove(0);
        assert_eq!(new.uptime_s, Some(3_660.0));
        assert!(
            !fleet.apply("unknown", &[point("x", "cpu.usage_percent", 1.0, &[])], later),
            "tenants not loaded are ignored"
        );
        // A reload that left before those points keeps them; its alert counts still win.
        let version = fleet.version();
        let stale_answer =
            FleetOut { tenant: "acme".into(), server_time: NOW.into(), hosts: vec![host("edge-1", 600, None, 3)] };
        fleet.load(&stale_answer, now);
        assert_ne!(fleet.version(), version);
        let edge = fleet.rows("acme", "edge", Sort::default(), later).remove(0);
        assert_eq!((edge.host.cpu, edge.host.firing_alerts, edge.status), (Some(12.0), 3, HostStatus::Online));
    }

    #[test]
    fn uptimes_read_in_their_two_largest_units() {
        assert_eq!(format_uptime(42.0), "42s");
        assert_eq!(format_uptime(423.0), "7m 3s");
        assert_eq!(format_uptime(5.0 * 3600.0 + 720.0), "5h 12m");
        assert_eq!(format_uptime(3.0 * 86_400.0 + 4.0 * 3600.0 + 5.0), "3d 4h");
    }
}
