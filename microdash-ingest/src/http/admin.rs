//! Tenants, dashboard users, tokens, and where programs send metrics (`GET /api/v1/connect`).
//!
//! Admins (admin tokens and admin users) see and manage every tenant and every user. A
//! tenant's signed-in dashboard users see their own tenant and manage its tokens; tenant API
//! tokens manage nothing, so a leaked ingest token cannot mint others.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use microdash_core::api::{
    ConnectInfo, CreateTenant, CreateToken, CreateUser, CreatedToken, FieldError, TenantOut, TokenOut, UpdateTenant,
    UserOut, WhoAmI,
};
use microdash_core::quota::{MAX_INGEST_METRICS_PER_S, MAX_SERIES, check_quota};
use microdash_core::token::{Scope, Scopes};
use microdash_store::{
    Credential, MAX_LABEL_BYTES, QuotaChange, Reach, RetentionChange, check_password, check_username,
};

use super::auth::Auth;
use super::{ApiError, ApiJson, AppState};
use crate::clock::now_ms;
use crate::views;

impl Auth {
    fn is_admin(&self) -> bool {
        self.0.tenant_id.is_none() && self.0.scopes.contains(Scope::Admin)
    }

    /// Tenants the caller may see: all for admins, its own for readers of a tenant.
    fn visible_tenants(&self) -> Result<Reach, ApiError> {
        match self.0.tenant_id {
            None if self.is_admin() => Ok(Reach::Every),
            Some(id) if self.0.scopes.contains(Scope::Read) => Ok(Reach::Tenant(id)),
            Some(_) => Err(ApiError::forbidden("this token lacks the read scope")),
            None => Err(ApiError::forbidden("this token lacks the admin scope")),
        }
    }

    /// Tokens the caller may manage: all for admins, its tenant's for that tenant's users.
    fn token_reach(&self) -> Result<Reach, ApiError> {
        match (self.0.tenant_id, self.0.credential) {
            (None, _) if self.is_admin() => Ok(Reach::Every),
            (Some(id), Credential::Session { .. }) => Ok(Reach::Tenant(id)),
            _ => Err(ApiError::forbidden("managing tokens needs an admin token or a signed-in user")),
        }
    }
}

/// `GET /api/v1/whoami`: what the request's credential may do.
pub(super) async fn whoami(State(state): State<AppState>, auth: Auth) -> Result<Json<WhoAmI>, ApiError> {
    Ok(Json(who(&state, &auth).await?))
}

/// The caller as `GET /api/v1/whoami` and the MCP server describe it.
pub(crate) async fn who(state: &AppState, auth: &Auth) -> Result<WhoAmI, ApiError> {
    let tenant = match auth.0.tenant_id {
        Some(id) => Some(
            state
                .store
                .tenant(id)
                .await?
                .map(|t| t.slug)
                .ok_or_else(|| ApiError::forbidden("the tenant no longer exists"))?,
        ),
        None => None,
    };
    Ok(WhoAmI { tenant, scopes: auth.0.scopes, admin: auth.is_admin() })
}

pub(super) async fn list_tenants(State(state): State<AppState>, auth: Auth) -> Result<Json<Vec<TenantOut>>, ApiError> {
    Ok(Json(tenants_visible(&state, &auth).await?))
}

/// The tenants the caller may see, as `GET /api/v1/tenants` and the MCP tools answer.
pub(crate) async fn tenants_visible(state: &AppState, auth: &Auth) -> Result<Vec<TenantOut>, ApiError> {
    let reach = auth.visible_tenants()?;
    let tenants = state.store.list_tenants().await?;
    let visible = tenants.iter().filter(|t| reach == Reach::Every || reach == Reach::Tenant(t.id));
    Ok(visible.map(|t| views::tenant(t, state.config.retention, state.ingestor.quota_defaults())).collect())
}

pub(super) async fn create_tenant(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<TenantOut>), ApiError> {
    auth.require(Scope::Admin)?;
    // Checked here too, so the answer names the field.
    let mut problems = Vec::new();
    if let Err(message) = microdash_core::token::check_slug(&body.slug) {
        problems.push(FieldError::new(None, Some("slug".into()), message));
    }
    if body.name.as_deref().is_some_and(|n| n.len() > MAX_LABEL_BYTES) {
        problems.push(FieldError::new(None, Some("name".into()), format!("is longer than {MAX_LABEL_BYTES} bytes")));
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid_fields(problems));
    }
    let tenant = state.store.create_tenant(&body.slug, body.name.as_deref().unwrap_or(""), now_ms()).await?;
    let view = views::tenant(&tenant, state.config.retention, state.ingestor.quota_defaults());
    Ok((StatusCode::CREATED, Json(view)))
}

/// `PATCH /api/v1/tenants/{slug}` (admins): a tenant's own retention and quotas.
pub(super) async fn update_tenant(
    State(state): State<AppState>,
    auth: Auth,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<UpdateTenant>,
) -> Result<Json<TenantOut>, ApiError> {
    auth.require(Scope::Admin)?;
    let change = RetentionChange {
        raw_hours: body.retention_raw_hours,
        rollup_1m_days: body.retention_1m_days,
        rollup_5m_days: body.retention_5m_days,
    };
    let tenant =
        state.store.tenant_by_slug(&slug).await?.ok_or_else(|| ApiError::not_found(format!("no tenant {slug:?}")))?;
    // Checked here, against what the tenant keeps now, so the answer names the field.
    change.check(tenant.retention, state.config.retention).map_err(|(field, m)| ApiError::invalid_field(field, m))?;
    let quota = QuotaChange { max_ingest_metrics_per_s: body.max_ingest_metrics_per_s, max_series: body.max_series };
    for (field, value) in [(MAX_INGEST_METRICS_PER_S, quota.max_ingest_metrics_per_s), (MAX_SERIES, quota.max_series)] {
        if let Some(Some(value)) = value {
            check_quota(field, value).map_err(|m| ApiError::invalid_field(field, m))?;
        }
    }
    let tenant = state.store.update_tenant(tenant.id, &change, &quota).await?;
    // This process holds the tenant to its new quotas at once; others at their next refresh.
    state.ingestor.reload_quotas(tenant.id).await;
    Ok(Json(views::tenant(&tenant, state.config.retention, state.ingestor.quota_defaults())))
}

pub(super) async fn list_tokens(State(state): State<AppState>, auth: Auth) -> Result<Json<Vec<TokenOut>>, ApiError> {
    Ok(Json(state.store.list_tokens(auth.token_reach()?).await?.iter().map(views::token).collect()))
}

pub(super) async fn create_token(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let reach = auth.token_reach()?;
    let scopes: Scopes = body
        .scopes
        .parse()
        .map_err(|e: microdash_core::token::UnknownScope| ApiError::invalid_field("scopes", e.to_string()))?;
    let tenant_id = match (&body.tenant, reach) {
        (Some(slug), _) => {
            let tenant = state.store.tenant_by_slug(slug).await?;
            match (tenant, reach) {
                (Some(t), Reach::Every) => Some(t.id),
                (Some(t), Reach::Tenant(own)) if t.id == own => Some(t.id),
                (None, Reach::Every) => {
                    return Err(ApiError::invalid_field("tenant", format!("{slug:?} does not exist")));
                }
                _ => return Err(ApiError::forbidden(format!("no access to tenant {slug:?}"))),
            }
        }
        (None, Reach::Tenant(own)) => Some(own),
        (None, Reach::Every) => None,
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
    // The store refuses someone else's token as missing, like one that does not exist.
    Ok(Json(views::token(&state.revoker().revoke_token(auth.token_reach()?, id, now_ms()).await?)))
}

/// Admins only: admin tokens and signed-in admins.
fn require_admin(auth: &Auth) -> Result<(), ApiError> {
    if auth.is_admin() { Ok(()) } else { Err(ApiError::forbidden("managing users needs an admin")) }
}

/// `GET /api/v1/users` (admins): every dashboard user, oldest first.
pub(super) async fn list_users(State(state): State<AppState>, auth: Auth) -> Result<Json<Vec<UserOut>>, ApiError> {
    require_admin(&auth)?;
    Ok(Json(state.store.list_users().await?.iter().map(views::user).collect()))
}

/// `POST /api/v1/users` (admins): a user of a tenant, or an admin without one. A `422` names
/// every field that is wrong; a taken username is `409`.
pub(super) async fn create_user(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<UserOut>), ApiError> {
    require_admin(&auth)?;
    let mut problems = Vec::new();
    let mut problem = |field: &str, message: String| problems.push(FieldError::new(None, Some(field.into()), message));
    let username = body.username.unwrap_or_default();
    if username.is_empty() {
        problem("username", "is required".into());
    } else if let Err(message) = check_username(&username) {
        problem("username", message);
    }
    let password = body.password.unwrap_or_default();
    if let Err(message) = check_password(&password) {
        problem("password", message);
    }
    let tenant_id = match body.tenant.as_deref().filter(|t| !t.is_empty()) {
        Some(slug) => match state.store.tenant_by_slug(slug).await? {
            Some(tenant) => Some(tenant.id),
            None => {
                problem("tenant", format!("{slug:?} does not exist"));
                None
            }
        },
        None => None,
    };
    if !problems.is_empty() {
        return Err(ApiError::invalid_fields(problems));
    }
    let user = state.store.create_user(&username, &password, tenant_id, now_ms()).await?;
    Ok((StatusCode::CREATED, Json(views::user(&user))))
}

/// `DELETE /api/v1/users/{username}` (admins): the user and their sessions (their open streams
/// end within a second). Signed-in admins cannot delete themselves.
pub(super) async fn delete_user(
    State(state): State<AppState>,
    auth: Auth,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&auth)?;
    if let Credential::Session { user_id, .. } = auth.0.credential
        && state.store.user_by_name(&username).await?.is_some_and(|u| u.id == user_id)
    {
        return Err(ApiError::conflict("you cannot delete the user you are signed in as"));
    }
    if state.revoker().delete_user(&username).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no user {username:?}")))
    }
}

/// `GET /api/v1/connect`: where programs send metrics besides this API (the MQTT broker and
/// its topic root), for the dashboard's snippets. Any authenticated caller.
pub(super) async fn connect(State(state): State<AppState>, _auth: Auth) -> Json<ConnectInfo> {
    Json(state.config.connect.clone())
}
