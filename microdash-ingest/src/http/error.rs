//! The one place where errors become HTTP responses.

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use microdash_core::ErrorKind;
use microdash_core::api::{ErrorBody, FieldError};
use microdash_core::metric::PayloadError;
use microdash_store::StoreError;

use super::extract::BadValue;
use crate::ingestor::IngestError;
use crate::queue::QueueError;
use crate::quota::QuotaError;

/// Seconds a client should wait before retrying when the queue or database is unavailable.
const RETRY_AFTER_SECS: u64 = 1;

/// An error answer: status, stable code, message and optional per-field details.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    /// `Retry-After` seconds, where waiting helps.
    retry_after_s: Option<u64>,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        let body = ErrorBody { error: code.to_owned(), message: message.into(), details: Vec::new(), limit: None };
        Self { status, body, retry_after_s: None }
    }

    /// `429` with `Retry-After: retry_after_s`: too many attempts of what `field` names.
    pub fn too_many_attempts(field: &str, message: impl Into<String>, retry_after_s: u64) -> Self {
        Self::limit_reached("too_many_attempts", field, message, retry_after_s.max(1))
    }

    /// `413`: the body is (or is declared) larger than `max_body_bytes`.
    pub fn payload_too_large(max_body_bytes: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is larger than {max_body_bytes} bytes"),
        )
    }

    /// `429`: the caller holds as much as the setting `limit` allows (named in `limit` and in
    /// `details`);
    /// worth trying again after `retry_after_s`.
    pub fn limit_reached(code: &str, limit: &str, message: impl Into<String>, retry_after_s: u64) -> Self {
        let message = message.into();
        let mut err = Self::new(StatusCode::TOO_MANY_REQUESTS, code, message.clone());
        err.body.details.push(FieldError::new(None, Some(limit.to_owned()), message));
        err.body.limit = Some(limit.to_owned());
        err.retry_after_s = Some(retry_after_s);
        err
    }

    /// `503`: every connection the setting `limit` allows is busy (`http_max_connections`,
    /// or `http_max_connections_per_ip` for the client's address).
    pub(crate) fn connections_exhausted(limit: &str) -> Self {
        let message = match limit {
            "http_max_connections" => "every connection the server allows is busy (http_max_connections); only \
                /livez, /api/v1/health, /metrics and the token API are served now"
                .to_owned(),
            limit => format!("every connection from your address is busy ({limit})"),
        };
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "too_many_connections", message)
    }

    /// This answer as raw HTTP/1.1 closing the connection, for a connection refused before
    /// hyper serves it.
    pub(crate) fn to_http1_bytes(&self) -> Vec<u8> {
        let body = serde_json::to_vec(&self.body).unwrap_or_default();
        let mut head = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
            self.status.as_u16(),
            self.status.canonical_reason().unwrap_or(""),
            body.len()
        );
        if let Some(secs) = self.retry_after() {
            head.push_str(&format!("retry-after: {secs}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&body);
        bytes
    }

    /// The `Retry-After` seconds this answer carries, if any.
    fn retry_after(&self) -> Option<u64> {
        self.retry_after_s.or((self.status == StatusCode::SERVICE_UNAVAILABLE).then_some(RETRY_AFTER_SECS))
    }

    /// `401`: no usable credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// `403`: valid credentials without the right.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// `422` naming one field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        // Messages of the shared checks (`check_quota`, ...) name their field already.
        let text = match message.strip_prefix(field).is_some_and(|rest| rest.starts_with(' ')) {
            true => message.clone(),
            false => format!("{field} {message}"),
        };
        let mut err = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", text);
        err.body.details.push(FieldError::new(None, Some(field.to_owned()), message));
        err
    }

    /// `422` naming every field that is wrong.
    pub fn invalid_fields(details: Vec<FieldError>) -> Self {
        let mut err = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!("{} problem(s) found; nothing was changed", details.len()),
        );
        err.body.details = details;
        err
    }

    /// `404`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// `404` with a code of its own, for an absence that is not a missing thing (a server
    /// without a dashboard build).
    pub(crate) fn not_here(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// `409`: the request contradicts the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// `429` for something still under way that a repeat would only pile onto (no quota,
    /// so no `Retry-After`).
    pub(crate) fn still_busy(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, code, message)
    }

    /// `500`: a failure of ours; `cause` is logged (inside the request's span), not shown.
    pub(crate) fn internal(cause: impl std::fmt::Display) -> Self {
        Self::from_kind(ErrorKind::Internal, cause.to_string())
    }

    /// `415`: a body that is not JSON, or says it is not.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", message)
    }

    /// A raw body that could not be read: `413` naming `max_body_bytes` when it is larger,
    /// else the status axum gives the failure.
    pub(crate) fn unreadable_body(rejection: BytesRejection, max_body_bytes: usize) -> Self {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Self::payload_too_large(max_body_bytes)
        } else {
            Self::new(status, "bad_body", rejection.body_text())
        }
    }

    /// The status answered.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body answered: code, message and per-field details.
    pub fn body(&self) -> &ErrorBody {
        &self.body
    }

    /// Map a shared error kind to a status; internal causes are logged, not shown.
    fn from_kind(kind: ErrorKind, message: String) -> Self {
        let (status, code) = match kind {
            ErrorKind::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            ErrorKind::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ErrorKind::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let message = match kind {
            ErrorKind::Internal => {
                tracing::error!(error = %message, "internal error");
                "internal error; see the server log".to_owned()
            }
            ErrorKind::Unavailable => {
                tracing::warn!(error = %message, "dependency unavailable");
                message
            }
            _ => message,
        };
        Self::new(status, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after();
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A body that `ApiJson` could not read: not JSON (`415`), too large (`413`), or JSON that is
/// malformed (`400`) or of the wrong shape (`422`), as axum classifies it.
impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::unsupported_media_type(rejection.body_text()),
            _ if status == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(status, "payload_too_large", rejection.body_text())
            }
            _ => Self::new(status, "bad_body", rejection.body_text()),
        }
    }
}

impl ApiError {
    /// A query string that `ApiQuery` could not read. When one parameter's value did not
    /// parse, `details` names it (axum reads the query through `serde_path_to_error`, whose
    /// error carries the path) and `bad_value` says the status; anything else, such as a
    /// parameter given twice, is `400 bad_query`.
    pub(crate) fn unreadable_query(rejection: QueryRejection, bad_value: BadValue) -> Self {
        let Some((field, reason)) = failed_query_field(&rejection) else {
            return Self::new(StatusCode::BAD_REQUEST, "bad_query", rejection.body_text());
        };
        let mut err = match bad_value {
            BadValue::InvalidRequest => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", format!("{field}: {reason}"))
            }
            BadValue::BadQuery => Self::new(StatusCode::BAD_REQUEST, "bad_query", rejection.body_text()),
        };
        err.body.details.push(FieldError::new(None, Some(field), reason));
        err
    }
}

/// The parameter whose value a query rejection failed on, and why; `None` when the failure
/// is not one parameter's (its path is the whole query string).
fn failed_query_field(rejection: &QueryRejection) -> Option<(String, String)> {
    use std::error::Error as _;
    // QueryRejection -> axum's Error -> serde_path_to_error's error of serde_urlencoded's.
    let mut source = rejection.source();
    while let Some(err) = source {
        if let Some(err) = err.downcast_ref::<serde_path_to_error::Error<serde::de::value::Error>>() {
            let field = err.path().to_string();
            return (field != ".").then(|| (field, err.inner().to_string()));
        }
        source = err.source();
    }
    None
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        Self::from_kind(err.kind(), err.to_string())
    }
}

impl From<QueueError> for ApiError {
    fn from(err: QueueError) -> Self {
        Self::from_kind(err.kind(), err.to_string())
    }
}

impl From<PayloadError> for ApiError {
    fn from(err: PayloadError) -> Self {
        match err {
            PayloadError::Malformed(msg) => Self::new(StatusCode::BAD_REQUEST, "malformed_json", msg),
            err @ PayloadError::TooMany { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_many_metrics", err.to_string())
            }
            PayloadError::Invalid { errors: details, .. } => {
                let mut api = Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_metrics",
                    format!("{} problem(s) found; nothing was accepted", details.len()),
                );
                api.body.details = details;
                api
            }
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(err: IngestError) -> Self {
        match err {
            IngestError::Payload(e) => e.into(),
            IngestError::Queue(e) => e.into(),
            IngestError::Quota(e) => e.into(),
        }
    }
}

impl From<QuotaError> for ApiError {
    /// `429` naming the limit, with `Retry-After` in whole seconds (rounded up, at least 1).
    fn from(err: QuotaError) -> Self {
        let retry_after_s = err.retry_after().as_secs() + u64::from(err.retry_after().subsec_nanos() > 0);
        Self::limit_reached("quota_exceeded", err.limit(), err.to_string(), retry_after_s.max(1))
    }
}
