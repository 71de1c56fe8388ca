//! Stored records as the API shows them (shared by the HTTP handlers and the admin CLI).

use microdash_core::api::{TenantOut, TokenOut, UserOut};
use microdash_core::metric::format_millis;
use microdash_core::quota::Quota;
use microdash_core::rollup::Retention;
use microdash_store::{Tenant, TokenInfo, User};

/// A tenant for the API, with the retention and quotas in force (its own, or the defaults).
pub fn tenant(t: &Tenant, defaults: Retention, quota_defaults: Quota) -> TenantOut {
    let retention = t.retention.over(defaults);
    let quota = t.quota.over(quota_defaults);
    TenantOut {
        id: t.id,
        slug: t.slug.clone(),
        name: t.name.clone(),
        created_at: format_millis(t.created_at_ms),
        retention_raw_hours: retention.raw_hours,
        retention_1m_days: retention.rollup_1m_days,
        retention_5m_days: retention.rollup_5m_days,
        max_ingest_metrics_per_s: quota.max_ingest_metrics_per_s,
        max_series: quota.max_series,
    }
}

/// A token (never its secret) for the API.
pub fn token(t: &TokenInfo) -> TokenOut {
    TokenOut {
        id: t.id,
        tenant: t.tenant_slug.clone(),
        name: t.name.clone(),
        prefix: t.prefix.clone(),
        scopes: t.scopes,
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
