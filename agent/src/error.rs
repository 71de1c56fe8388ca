//! The agent library's one error type.

/// Why sampling the host or sending samples failed. A failed send leaves the samples in the
/// [`crate::publish::Outbox`] for the next attempt.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The host could not be read (`what` names the part: the system, its disks, its
    /// network interfaces).
    #[error("reading the host's {what}: {source}")]
    Host {
        /// The part of the host that could not be read.
        what: &'static str,
        /// sysinfo's reason.
        source: sysinfo::Error,
    },
    /// The MQTT client could not be created, could not connect, or a publish was not
    /// acknowledged.
    #[error("mqtt: {0}")]
    Mqtt(#[from] paho_mqtt::Error),
    /// The HTTP API could not be reached or refused the samples.
    #[error("http: {0}")]
    Http(#[from] microdash_client::Error),
}
