//! Extractors whose refusals are [`ApiError`]s: a handler takes `ApiJson<T>` or
//! `ApiQuery<T>` and never sees, nor maps, a rejection. How a malformed body, a body that is
//! not JSON or a bad query string is answered is decided once, in `http::error`.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;

/// A JSON body (`Content-Type: application/json`) read as `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<T>::from_request(request, state).await?;
        Ok(Self(value))
    }
}

/// The query string read as `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: QueryParams,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(value) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::unreadable_query(rejection, T::BAD_VALUE))?;
        Ok(Self(value))
    }
}

/// A query string type that [`ApiQuery`] reads. Its one choice is the status of a parameter
/// whose value does not parse, which is part of each endpoint's contract.
pub(crate) trait QueryParams: DeserializeOwned {
    /// How a parameter whose value does not parse is answered.
    const BAD_VALUE: BadValue = BadValue::BadQuery;
}

/// How [`ApiQuery`] answers a parameter whose value does not parse (a number that is not
/// one, a word outside its enum); either way the body's `details` names the parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadValue {
    /// `400 bad_query`, as axum answers a query string it cannot read.
    BadQuery,
    /// `422 invalid_request`, like a value out of range: the contract of
    /// `GET /api/v1/metrics`, whose `resolution`, `max_points` and `limit` were text its
    /// handler parsed before they were typed.
    InvalidRequest,
}

impl QueryParams for microdash_core::api::MetricsQuery {
    const BAD_VALUE: BadValue = BadValue::InvalidRequest;
}
impl QueryParams for microdash_core::api::TenantQuery {}
impl QueryParams for microdash_core::api::StreamQuery {}
impl QueryParams for microdash_core::api::alert::AlertsQuery {}
impl QueryParams for microdash_core::api::alert::AlertHistoryQuery {}
