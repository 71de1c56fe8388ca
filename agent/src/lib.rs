//! microdash host agent (arrives with the MQTT issue).
//!
//! A small binary, `microdash-agent`, that samples CPU, memory, disk, load, network and uptime
//! with `sysinfo` and publishes them over MQTT on `metrics/{tenant}/{agent_id}/{metric_name}`
//! (or over HTTP through `microdash-client`), buffering samples while disconnected so a short
//! outage leaves no gap.
