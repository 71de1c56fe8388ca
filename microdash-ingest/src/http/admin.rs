//! Tenant and token management, for tokens with the `admin` scope.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use microdash_core::api::{CreateTenant, CreateToken, CreatedToken, TenantOut, TokenOut};
use microdash_core::token::{Scope, Scopes};

use super::auth::Auth;
use super::{ApiError, AppState};
use crate::clock::now_ms;
use crate::views;

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(t)| t).map_err(|r| ApiError::new(r.status(), "bad_body", r.body_text()))
}

pub(super) async fn list_tenants(State(state): State<AppState>, auth: Auth) -> Result<Json<Vec<TenantOut>>, ApiError> {
    auth.require(Scope::Admin)?;
    Ok(Json(state.store.list_tenants().await?.iter().map(views::tenant).collect()))
}

pub(super) async fn create_tenant(
    State(state): State<AppState>,
    auth: Auth,
    body: Result<Json<CreateTenant>, JsonRejection>,
) -> Result<(StatusCode, Json<TenantOut>), ApiError> {
    auth.require(Scope::Admin)?;
    let body = json_body(body)?;
    let tenant = state.store.create_tenant(&body.slug, body.name.as_deref().unwrap_or(""), now_ms()).await?;
    Ok((StatusCode::CREATED, Json(views::tenant(&tenant))))
}

pub(super) async fn list_tokens(State(state): State<AppState>, auth: Auth) -> Result<Json<Vec<TokenOut>>, ApiError> {
    auth.require(Scope::Admin)?;
    Ok(Json(state.store.list_tokens(None).await?.iter().map(views::token).collect()))
}

pub(super) async fn create_token(
    State(state): State<AppState>,
    auth: Auth,
    body: Result<Json<CreateToken>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    auth.require(Scope::Admin)?;
    let body = json_body(body)?;
    let scopes: Scopes = body
        .scopes
        .parse()
        .map_err(|e: microdash_core::token::UnknownScope| ApiError::invalid_field("scopes", e.to_string()))?;
    let tenant_id = match &body.tenant {
        Some(slug) => Some(
            state
                .store
                .tenant_by_slug(slug)
                .await?
                .ok_or_else(|| ApiError::invalid_field("tenant", format!("{slug:?} does not exist")))?
                .id,
        ),
        None => None,
    };
    let (info, token) =
        state.store.create_token(tenant_id, scopes, body.name.as_deref().unwrap_or(""), now_ms()).await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { info: views::token(&info), token })))
}

pub(super) async fn revoke_token(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> Result<Json<TokenOut>, ApiError> {
    auth.require(Scope::Admin)?;
    Ok(Json(views::token(&state.store.revoke_token(id, now_ms()).await?)))
}
