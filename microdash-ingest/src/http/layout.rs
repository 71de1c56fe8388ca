//! A tenant's dashboard layout: `GET /api/v1/layout?tenant=SLUG` (anyone who reads the tenant)
//! and `PUT` (its signed-in users, or an admin naming it): which widgets are hidden or pinned,
//! their sizes, kinds and order, saved on the server so they follow the tenant's users to
//! another browser. A `PUT` replaces the whole layout; a `422` names every field that is wrong.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use microdash_core::api::{LayoutOut, TenantQuery};
use microdash_core::layout::parse_layout;
use microdash_core::metric::format_millis;
use microdash_core::token::Scope;
use microdash_store::Credential;

use super::auth::Auth;
use super::{ApiError, ApiQuery, AppState};
use crate::clock::now_ms;

impl Auth {
    /// The tenant whose dashboard the caller may arrange: a signed-in user's own, or the one
    /// an admin names. API tokens arrange nothing: a layout is a person's choice.
    async fn tenant_to_arrange(&self, state: &AppState, slug: Option<&str>) -> Result<i64, ApiError> {
        let admin = self.0.tenant_id.is_none() && self.0.scopes.contains(Scope::Admin);
        if !admin && !matches!(self.0.credential, Credential::Session { .. }) {
            return Err(ApiError::forbidden("arranging the dashboard needs a signed-in user or an admin"));
        }
        match slug {
            Some(slug) => self.tenant_readable(state, slug).await,
            None if admin => Err(ApiError::invalid_field("tenant", "is required for admins: add ?tenant=<slug>")),
            None => self.tenant_with(Scope::Read),
        }
    }
}

pub(super) async fn get_layout(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(params): ApiQuery<TenantQuery>,
) -> Result<Json<LayoutOut>, ApiError> {
    let tenant_id = auth.tenant_to_read(&state, params.tenant.as_deref()).await?;
    let stored = state.store.layout(tenant_id).await?;
    Ok(Json(match stored {
        Some(stored) => stored.layout.to_output(Some(format_millis(stored.updated_at_ms))),
        None => LayoutOut::default(),
    }))
}

pub(super) async fn put_layout(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(params): ApiQuery<TenantQuery>,
    body: Bytes,
) -> Result<Json<LayoutOut>, ApiError> {
    let tenant_id = auth.tenant_to_arrange(&state, params.tenant.as_deref()).await?;
    let layout = parse_layout(&body).map_err(ApiError::invalid_fields)?;
    let stored = state.store.save_layout(tenant_id, &layout, now_ms()).await?;
    Ok(Json(stored.layout.to_output(Some(format_millis(stored.updated_at_ms)))))
}
