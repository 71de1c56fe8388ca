//! Why a [`Deliverer`](crate::deliver::Deliverer) could not be built. How one delivery went
//! is no error but an [`Attempt`](crate::deliver::Attempt).

use microdash_core::error::ErrorKind;

/// A [`DeliveryConfig`](crate::deliver::DeliveryConfig) that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// `smtp.url` is not an SMTP URL lettre understands (`smtp://host:port`,
    /// `smtps://host`, `smtp://user:pass@host:587?tls=required`). The URL is left out of the
    /// message: it may hold a password.
    #[error("invalid smtp_url: {0}")]
    SmtpUrl(#[source] lettre::transport::smtp::Error),
    /// `smtp.from` is not an email address (`microdash@example.com` or
    /// `Microdash <microdash@example.com>`).
    #[error("invalid smtp_from {from:?}: {source}")]
    SmtpFrom {
        /// What was given.
        from: String,
        /// Why it is not an address.
        #[source]
        source: lettre::address::AddressError,
    },
    /// The SMTP connection pool runs a task, so the deliverer must be built inside a Tokio
    /// runtime.
    #[error("the email deliverer must be built inside a tokio runtime")]
    NoRuntime,
    /// The system's trust store could not be loaded (no CA certificates: on Debian, install
    /// `ca-certificates`).
    #[error("loading the system's TLS trust store: {0}")]
    TrustStore(#[source] rustls::Error),
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
}

impl DeliveryError {
    /// The shared error classification: a bad setting is `Invalid`; a missing runtime (a
    /// bug), trust store or HTTP client is `Internal`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DeliveryError::SmtpUrl(_) | DeliveryError::SmtpFrom { .. } => ErrorKind::Invalid,
            DeliveryError::NoRuntime | DeliveryError::TrustStore(_) | DeliveryError::HttpClient(_) => {
                ErrorKind::Internal
            }
        }
    }
}
