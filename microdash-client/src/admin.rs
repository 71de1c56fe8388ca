//! Tenants and tokens: `GET|POST /api/v1/tenants`, `PATCH /api/v1/tenants/{slug}`,
//! `GET|POST /api/v1/tokens`, `DELETE /api/v1/tokens/{id}`.
//!
//! Admin tokens see and manage every tenant and token; a tenant's token lists its own
//! tenant (with the `read` scope) and manages no tokens, so a leaked ingest token cannot
//! mint others.

use microdash_core::api::{CreateTenant, CreateToken, CreatedToken, TenantOut, TokenOut, UpdateTenant, WhoAmI};
use reqwest::Method;

use crate::client::{Client, Replay};
use crate::error::Error;

impl Client {
    /// What the token may do: its tenant (none for admins), scopes, and whether it is an
    /// admin's.
    ///
    /// ```no_run
    /// # async fn demo(client: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// let me = client.whoami().await?;
    /// println!("tenant {:?}, scopes {}", me.tenant, me.scopes);
    /// # Ok(()) }
    /// ```
    pub async fn whoami(&self) -> Result<WhoAmI, Error> {
        self.call(self.request(Method::GET, &["whoami"]), Replay::Safe).await
    }

    /// The tenants the token may see: all of them for an admin, its own for a tenant token.
    ///
    /// ```no_run
    /// # async fn demo(admin: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// for tenant in admin.tenants().await? {
    ///     println!("{} keeps raw points {} h", tenant.slug, tenant.retention_raw_hours);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn tenants(&self) -> Result<Vec<TenantOut>, Error> {
        self.call(self.request(Method::GET, &["tenants"]), Replay::Safe).await
    }

    /// Create a tenant (admin token). `name` may be empty: the slug is then its name.
    ///
    /// ```no_run
    /// # async fn demo(admin: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// let tenant = admin.create_tenant("fleet", "IoT fleet").await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_tenant(&self, slug: &str, name: &str) -> Result<TenantOut, Error> {
        let body = CreateTenant { slug: slug.to_owned(), name: Some(name.to_owned()) };
        self.call(self.request(Method::POST, &["tenants"]).json(&body), Replay::Unsafe).await
    }

    /// Set a tenant's own retention (admin token); see [`UpdateTenant`]. Safe to repeat:
    /// it sets values rather than changing them by an amount.
    ///
    /// ```no_run
    /// # async fn demo(admin: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// use microdash_client::UpdateTenant;
    /// let longer = UpdateTenant { retention_raw_hours: Some(Some(48)), ..UpdateTenant::default() };
    /// admin.update_tenant("fleet", &longer).await?;
    /// # Ok(()) }
    /// ```
    pub async fn update_tenant(&self, slug: &str, update: &UpdateTenant) -> Result<TenantOut, Error> {
        self.call(self.request(Method::PATCH, &["tenants", slug]).json(update), Replay::Safe).await
    }

    /// Every token, revoked ones included (admin token). Never the secrets.
    ///
    /// ```no_run
    /// # async fn demo(admin: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// for token in admin.tokens().await? {
    ///     println!("{} {} {:?} {}", token.id, token.prefix, token.tenant, token.scopes);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn tokens(&self) -> Result<Vec<TokenOut>, Error> {
        self.call(self.request(Method::GET, &["tokens"]), Replay::Safe).await
    }

    /// Create a token (admin token); the secret is in the answer and nowhere else.
    ///
    /// ```no_run
    /// # async fn demo(admin: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// use microdash_client::CreateToken;
    /// let created = admin
    ///     .create_token(&CreateToken { tenant: Some("fleet".into()), scopes: "ingest".into(), name: Some("agents".into()) })
    ///     .await?;
    /// println!("{}", created.token);
    /// # Ok(()) }
    /// ```
    pub async fn create_token(&self, request: &CreateToken) -> Result<CreatedToken, Error> {
        self.call(self.request(Method::POST, &["tokens"]).json(request), Replay::Unsafe).await
    }

    /// Revoke a token (admin token): it stops working at once, streams opened with it end
    /// within a heartbeat. Answers the token as it now stands.
    ///
    /// ```no_run
    /// # async fn demo(admin: microdash_client::Client) -> Result<(), microdash_client::Error> {
    /// let revoked = admin.revoke_token(7).await?;
    /// assert!(revoked.revoked_at.is_some());
    /// # Ok(()) }
    /// ```
    pub async fn revoke_token(&self, id: i64) -> Result<TokenOut, Error> {
        self.call(self.request(Method::DELETE, &["tokens", &id.to_string()]), Replay::Safe).await
    }
}
