//! Screens, one module each: what a route shows.
//!
//! - [`sign_in`]: the sign-in form.
//! - [`overview`]: the fleet: per tenant a row per host with its resources and status.
//! - [`tenant`]: a tenant's widgets, live or over a past range, arranged as the tenant chose.
//! - [`tokens`]: API tokens: create (shown once, with snippets), list, revoke.
//! - [`admin`]: tenants and users (admins).
//! - [`alerts`]: a tenant's alerting screens (inbox, rules, channels).

pub mod admin;
pub mod alerts;
pub mod overview;
pub mod sign_in;
pub mod tenant;
pub mod tokens;

pub use admin::AdminPage;
pub use overview::Overview;
pub use sign_in::SignInPage;
pub use tenant::TenantPage;
pub use tokens::TokensPage;
