//! The fleet overview's rules, shared by the server (`GET /api/v1/fleet`, the agents list) and
//! the dashboard (which ages the answer by its own clock between loads): which metrics
//! describe a host, and when a host counts as online, stale or offline.
//!
//! A host is judged by the interval it announces (the host agent sends it as
//! [`INTERVAL_METRIC`]): online while it reported within [`STALE_AFTER_INTERVALS`] of them,
//! stale up to [`OFFLINE_AFTER_INTERVALS`], offline beyond. Each bound has a floor, so an
//! agent reporting every second is not called stale for one slow batch.

use serde::{Deserialize, Serialize};

/// The metric in which agents announce their reporting interval, in seconds.
pub const INTERVAL_METRIC: &str = "agent.interval_s";

/// The interval assumed for an agent that announced none.
pub const DEFAULT_INTERVAL_MS: i64 = 30_000;

/// A host that reported within this many intervals is online.
pub const STALE_AFTER_INTERVALS: i64 = 2;
/// ...and never stale sooner than this.
pub const MIN_STALE_AFTER_MS: i64 = 5_000;
/// A host silent for more than this many intervals is offline.
pub const OFFLINE_AFTER_INTERVALS: i64 = 6;
/// ...and never offline sooner than this.
pub const MIN_OFFLINE_AFTER_MS: i64 = 15_000;

/// The host agent's metrics the fleet overview shows per host (latest value of each): CPU,
/// memory, disk (one series per mount), network, uptime, load and the announced interval.
pub const FLEET_METRICS: [&str; 9] = [
    "cpu.usage_percent",
    "mem.used_percent",
    "mem.used_bytes",
    "disk.used_percent",
    "net.rx_bytes_per_s",
    "net.tx_bytes_per_s",
    "uptime_s",
    "load.1m",
    INTERVAL_METRIC,
];

/// Whether a host is reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    /// Reported within two intervals.
    Online,
    /// Late: missed a few reports.
    Stale,
    /// Silent for longer.
    Offline,
}

impl HostStatus {
    /// The status of a host whose latest report is `age_ms` old and which announced
    /// `interval_s` (none: [`DEFAULT_INTERVAL_MS`]).
    pub fn of(age_ms: i64, interval_s: Option<f64>) -> HostStatus {
        let interval = interval_ms(interval_s);
        if age_ms <= (STALE_AFTER_INTERVALS * interval).max(MIN_STALE_AFTER_MS) {
            HostStatus::Online
        } else if age_ms <= (OFFLINE_AFTER_INTERVALS * interval).max(MIN_OFFLINE_AFTER_MS) {
            HostStatus::Stale
        } else {
            HostStatus::Offline
        }
    }

    /// `online`, `stale` or `offline`, as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            HostStatus::Online => "online",
            HostStatus::Stale => "stale",
            HostStatus::Offline => "offline",
        }
    }
}

/// An announced interval in milliseconds; a missing, non-finite or non-positive one is
/// [`DEFAULT_INTERVAL_MS`].
pub fn interval_ms(interval_s: Option<f64>) -> i64 {
    interval_s.filter(|s| s.is_finite() && *s > 0.0).map_or(DEFAULT_INTERVAL_MS, |s| (s * 1000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(age_ms: i64, interval_s: Option<f64>, expected: HostStatus) {
        assert_eq!(HostStatus::of(age_ms, interval_s), expected, "{age_ms} ms old, interval {interval_s:?}");
    }

    #[test]
    fn a_host_is_judged_by_its_announced_interval_with_floors() {
        // Every 10 s: online up to 20 s, stale up to 60 s.
        check(0, Some(10.0), HostStatus::Online);
        check(20_000, Some(10.0), HostStatus::Online);
        check(20_001, Some(10.0), HostStatus::Stale);
        check(60_000, Some(10.0), HostStatus::Stale);
        check(60_001, Some(10.0), HostStatus::Offline);
        // Every second: the floors, 5 s and 15 s.
        check(4_000, Some(1.0), HostStatus::Online);
        check(5_001, Some(1.0), HostStatus::Stale);
        check(15_001, Some(1.0), HostStatus::Offline);
        // None announced (or nonsense): 30 s.
        for interval in [None, Some(0.0), Some(-1.0), Some(f64::NAN)] {
            check(60_000, interval, HostStatus::Online);
            check(60_001, interval, HostStatus::Stale);
            check(180_001, interval, HostStatus::Offline);
        }
        // A clock that runs behind the server's makes ages negative: still online.
        check(-5_000, Some(1.0), HostStatus::Online);
    }

    #[test]
    fn statuses_read_as_the_api_writes_them() {
        for status in [HostStatus::Online, HostStatus::Stale, HostStatus::Offline] {
            assert_eq!(serde_json::to_string(&status).unwrap_or_default(), format!("\"{}\"", status.as_str()));
        }
    }
}
