//! The one place where errors become HTTP responses.

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use microdash_core::ErrorKind;
use microdash_core::api::{ErrorBody, FieldError};
use microdash_core::metric::PayloadError;
use microdash_store::StoreError;

use crate::ingestor::IngestError;
use crate::queue::QueueError;

/// Seconds a client should wait before retrying when the queue or database is unavailable.
const RETRY_AFTER_SECS: &str = "1";

/// An error answer: status, stable code, message and optional per-field details.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    /// Seconds for `Retry-After` on a `429`.
    retry_after_s: Option<u64>,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody { error: code.to_owned(), message: message.into(), details: Vec::new() },
            retry_after_s: None,
        }
    }

    /// `429` with `Retry-After: retry_after_s`: too many attempts of what `field` names.
    pub fn too_many_attempts(field: &str, message: impl Into<String>, retry_after_s: u64) -> Self {
        let message = message.into();
        let mut err = Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", message.clone());
        err.body.details.push(FieldError::new(None, Some(field.to_owned()), message));
        err.retry_after_s = Some(retry_after_s.max(1));
        err
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
        let mut err = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", format!("{field} {message}"));
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
            Self::new(status, "payload_too_large", format!("request body is larger than {max_body_bytes} bytes"))
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
        let mut response = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
        }
        if let Some(secs) = self.retry_after_s {
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

/// A query string that `ApiQuery` could not read: `400`.
impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_query", rejection.body_text())
    }
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
        }
    }
}
