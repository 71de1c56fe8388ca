//! Host measurements.
//!
//! Metric names (each sample carries `agent_id` and `timestamp` when published):
//! `cpu.usage_percent`, `mem.used_bytes`, `mem.used_percent`, `disk.used_percent` (tag
//! `mount`, one per real filesystem), `load.1m`/`load.5m`/`load.15m`, `net.rx_bytes_per_s`,
//! `net.tx_bytes_per_s` (all interfaces but loopback), `uptime_s`, and `agent.interval_s`, the
//! interval the agent announces so the server can tell when it went quiet.

use std::collections::BTreeMap;
use std::time::Instant;

use sysinfo::{Disks, Networks, System};

use crate::AgentError;

/// One measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: &'static str,
    /// Value.
    pub value: f64,
    /// Tags (the mount point of a disk).
    pub tags: BTreeMap<String, String>,
    /// When it was taken, Unix milliseconds.
    pub timestamp_ms: i64,
}

/// Filesystems that are not storage: kernel interfaces, memory-backed and container layers.
const PSEUDO_FILESYSTEMS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "fuse.lxcfs",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
];

/// Whether a filesystem type holds real storage worth a disk gauge.
pub fn is_real_filesystem(fs_type: &str, total_bytes: u64) -> bool {
    total_bytes > 0 && !PSEUDO_FILESYSTEMS.contains(&fs_type)
}

/// Samples the host; keeps what rates need between calls.
pub struct Collector {
    system: System,
    disks: Disks,
    networks: Networks,
    last_network: Option<Instant>,
    interval_s: f64,
}

impl Collector {
    /// A collector for an agent reporting every `interval_s` seconds.
    pub fn new(interval_s: f64) -> Result<Self, AgentError> {
        let host = |what| move |source| AgentError::Host { what, source };
        let mut system = System::new().map_err(host("system"))?;
        // CPU usage is a difference between two readings: take the first now.
        system.refresh_cpu_usage();
        let disks = Disks::new_with_refreshed_list().map_err(host("disks"))?;
        let networks = Networks::new_with_refreshed_list().map_err(host("network interfaces"))?;
        Ok(Self { system, disks, networks, last_network: Some(Instant::now()), interval_s })
    }

    /// Everything, measured now.
    pub fn sample(&mut self, timestamp_ms: i64) -> Vec<Sample> {
        let mut out = Vec::new();
        let mut push = |name: &'static str, value: f64, tags: BTreeMap<String, String>| {
            if value.is_finite() {
                out.push(Sample { name, value, tags, timestamp_ms });
            }
        };
        self.system.refresh_cpu_usage();
        push("cpu.usage_percent", f64::from(self.system.global_cpu_usage()), BTreeMap::new());
        self.system.refresh_memory();
        let (used, total) = (self.system.used_memory(), self.system.total_memory());
        push("mem.used_bytes", used as f64, BTreeMap::new());
        if total > 0 {
            push("mem.used_percent", used as f64 / total as f64 * 100.0, BTreeMap::new());
        }
        self.disks.refresh(true);
        for disk in self.disks.iter() {
            let total = disk.total_space();
            if !is_real_filesystem(&disk.file_system().to_string_lossy(), total) {
                continue;
            }
            let used = total.saturating_sub(disk.available_space());
            let mount = BTreeMap::from([("mount".to_owned(), disk.mount_point().to_string_lossy().into_owned())]);
            push("disk.used_percent", used as f64 / total as f64 * 100.0, mount);
        }
        if let Ok(load) = System::load_average() {
            push("load.1m", load.one, BTreeMap::new());
            push("load.5m", load.five, BTreeMap::new());
            push("load.15m", load.fifteen, BTreeMap::new());
        }
        self.networks.refresh(true);
        let elapsed = self.last_network.replace(Instant::now()).map_or(0.0, |at| at.elapsed().as_secs_f64());
        if elapsed > 0.0 {
            let real = || self.networks.iter().filter(|(name, _)| name.to_string_lossy() != "lo");
            let rx: u64 = real().map(|(_, data)| data.received()).sum();
            let tx: u64 = real().map(|(_, data)| data.transmitted()).sum();
            push("net.rx_bytes_per_s", rx as f64 / elapsed, BTreeMap::new());
            push("net.tx_bytes_per_s", tx as f64 / elapsed, BTreeMap::new());
        }
        if let Ok(uptime) = System::uptime() {
            push("uptime_s", uptime as f64, BTreeMap::new());
        }
        push("agent.interval_s", self.interval_s, BTreeMap::new());
        out
    }
}

/// This host's name, for the default agent id (lowercase, with characters an agent id cannot
/// hold replaced).
pub fn default_agent_id() -> String {
    let name = System::host_name().unwrap_or_else(|_| "host".into()).to_lowercase();
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "_.:-".contains(c) { c } else { '-' }).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_filesystems_are_not_disks() {
        for pseudo in ["tmpfs", "proc", "overlay", "sysfs", "devtmpfs", "squashfs"] {
            assert!(!is_real_filesystem(pseudo, 1 << 30), "{pseudo}");
        }
        assert!(is_real_filesystem("ext4", 1 << 30));
        assert!(is_real_filesystem("xfs", 1 << 30));
        assert!(!is_real_filesystem("ext4", 0), "an empty device is not a disk");
    }

    #[test]
    fn a_sample_of_this_host_has_every_metric() {
        let mut collector = Collector::new(10.0).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let samples = collector.sample(1_700_000_000_000);
        let names: std::collections::BTreeSet<&str> = samples.iter().map(|s| s.name).collect();
        for name in [
            "cpu.usage_percent",
            "mem.used_bytes",
            "mem.used_percent",
            "load.1m",
            "net.rx_bytes_per_s",
            "uptime_s",
            "agent.interval_s",
        ] {
            assert!(names.contains(name), "{name} missing from {names:?}");
        }
        let percent = |name: &str| samples.iter().find(|s| s.name == name).unwrap().value;
        assert!((0.0..=100.0).contains(&percent("mem.used_percent")));
        assert!((0.0..=100.0 * 64.0).contains(&percent("cpu.usage_percent")));
        for disk in samples.iter().filter(|s| s.name == "disk.used_percent") {
            assert!(disk.tags["mount"].starts_with('/'), "{disk:?}");
            assert!((0.0..=100.0).contains(&disk.value));
        }
        assert!(samples.iter().all(|s| s.timestamp_ms == 1_700_000_000_000));
        assert!(default_agent_id().chars().all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c)));
    }
}
