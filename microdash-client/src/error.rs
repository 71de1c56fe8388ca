//! [`Error`]: every way a call can fail, and whether trying again may help.

use std::time::Duration;

use microdash_core::api::FieldError;

/// Client failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error: its status and the JSON error body every error
    /// answer carries (`{"error": code, "message": ..., "details": [...]}`).
    #[error("{status}: {code}: {message}{}", .request_id.as_deref().map(|id| format!(" (request {id})")).unwrap_or_default())]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable machine-readable code, such as `invalid_metrics`.
        code: String,
        /// Human-readable message.
        message: String,
        /// Per-field validation problems.
        details: Vec<FieldError>,
        /// How long the server asked to wait before retrying (`Retry-After`, on `503` and
        /// `429`).
        retry_after: Option<Duration>,
        /// The `x-request-id` the server answered with: every line it logged about the
        /// request names it, so quote it when reporting the failure.
        request_id: Option<String>,
    },
    /// The request could not be sent or the answer not read (connection refused, timeout,
    /// a body that is not the JSON expected).
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The request body could not be encoded.
    #[error("encoding the request: {0}")]
    Encode(#[from] serde_json::Error),
    /// The base URL is not an `http` or `https` URL.
    #[error("invalid base url {0:?}")]
    InvalidUrl(String),
    /// The token cannot be sent in an HTTP header (it holds control characters). The token
    /// itself is not part of the message.
    #[error("the token is not a valid header value")]
    InvalidToken,
    /// The user agent cannot be sent in an HTTP header.
    #[error("invalid user agent {0:?}")]
    InvalidUserAgent(String),
    /// The TLS configuration could not be built (the system's trust store is unreadable).
    #[error("tls: {0}")]
    Tls(#[source] rustls::Error),
    /// The live stream broke or sent something unreadable.
    #[error("live stream: {0}")]
    Stream(String),
}

impl Error {
    /// Whether retrying later may succeed: the server was unreachable, timed out, or asked
    /// to be called again (`503 Service Unavailable`, `429 Too Many Requests`).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api { status, .. } => *status == 503 || *status == 429,
            Error::Http(e) => e.is_connect() || e.is_timeout(),
            Error::Stream(_) => true,
            Error::InvalidUrl(_)
            | Error::InvalidToken
            | Error::InvalidUserAgent(_)
            | Error::Encode(_)
            | Error::Tls(_) => false,
        }
    }

    /// The HTTP status of an [`Error::Api`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's id for the request that failed ([`Error::Api`]), as its log names it.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Error::Api { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// How long the server asked to wait before the next attempt, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the request certainly never reached the server (no connection could be
    /// made), so that even a request that is not idempotent may be sent again.
    pub(crate) fn was_not_sent(&self) -> bool {
        matches!(self, Error::Http(e) if e.is_connect())
    }
}
