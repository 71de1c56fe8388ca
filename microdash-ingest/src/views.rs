//! Stored records as the API shows them (shared by the HTTP handlers and the admin CLI).

use microdash_core::api::{TenantOut, TokenOut, UserOut};
use microdash_core::metric::format_millis;
use microdash_core::rollup::Retention;
use microdash_store::{Tenant, TokenInfo, User};

/// A tenant for the API, with the retention in force (its own, or `defaults`).
pub fn tenant(t: &Tenant, defaults: Retention) -> TenantOut {
    let retention = t.retention.over(defaults);
    TenantOut {
        id: t.id,
        slug: t.slug.clone(),
        name: t.name.clone(),
        created_at: format_millis(t.created_at_ms),
        retention_raw_hours: retention.raw_hours,
        retention_1m_days: retention.rollup_1m_days,
        retention_5m_days: retention.rollup_5m_days,
    }
}

/// A token (never its secret) for the API.
pub fn token(t: &TokenInfo) -> TokenOut {
    TokenOut {
        id: t.id,
        tenant: t.tenant_slug.clone(),
        name: t.name.clone(),
        prefix: t.prefix.clone(),
        scopes: t.scopes.to_string(),
        created_at: format_millis(t.created_at_ms),
        last_used_at: t.last_used_at_ms.map(format_millis),
        revoked_at: t.revoked_at_ms.map(format_millis),
    }
}

/// A dashboard user (never the password) for the API.
pub fn user(u: &User) -> UserOut {
    UserOut {
        username: u.username.clone(),
        tenant: u.tenant_slug.clone(),
        admin: u.tenant_id.is_none(),
        created_at: format_millis(u.created_at_ms),
    }
}
