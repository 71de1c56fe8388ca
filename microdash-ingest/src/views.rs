//! Stored records as the API shows them (shared by the HTTP handlers and the admin CLI).

use microdash_core::api::{TenantOut, TokenOut};
use microdash_core::metric::format_millis;
use microdash_store::{Tenant, TokenInfo};

/// A tenant for the API.
pub fn tenant(t: &Tenant) -> TenantOut {
    TenantOut { id: t.id, slug: t.slug.clone(), name: t.name.clone(), created_at: format_millis(t.created_at_ms) }
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
