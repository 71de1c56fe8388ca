//! Tenants and API tokens.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::RunQueryDsl;
use microdash_core::quota::{MAX_INGEST_METRICS_PER_S, MAX_SERIES, QuotaOverrides, check_quota};
use microdash_core::rollup::{
    Coverage, ExpiredBefore, MAX_RETENTION_DAYS, MAX_RETENTION_RAW_HOURS, Retention, RetentionOverrides,
    check_retention,
};
use microdash_core::token::{self, Scope, Scopes};

use crate::schema::{api_tokens, tenants};
use crate::{Store, StoreError, with_conn};

/// A tenant: the unit of isolation. Every series, point, agent and token belongs to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Database id.
    pub id: i64,
    /// Short, URL- and topic-safe name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
    /// The tenant's own retention; what it leaves out is the server's default.
    pub retention: RetentionOverrides,
    /// The tenant's own quotas; what it leaves out is the server's default.
    pub quota: QuotaOverrides,
    /// How far the retention task has deleted this tenant's data.
    pub expired_before: ExpiredBefore,
}

impl Tenant {
    /// What the tenant's stored data covers, with `defaults` for what it does not set.
    pub fn coverage(&self, defaults: Retention) -> Coverage {
        Coverage { retention: RetentionOverrides::over(&self.retention, defaults), expired_before: self.expired_before }
    }
}

/// Whose tokens an operation may see or touch. The store applies it itself, so a caller
/// cannot list or revoke another tenant's tokens by forgetting a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Every token, the admin tokens included: for admins and the operator's CLI.
    Every,
    /// The tokens of this tenant only: for its signed-in users.
    Tenant(i64),
}

impl Reach {
    /// Whether a token of `tenant_id` (`None`: an admin token) is within reach.
    pub fn covers(self, tenant_id: Option<i64>) -> bool {
        match self {
            Reach::Every => true,
            Reach::Tenant(own) => tenant_id == Some(own),
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = tenants)]
struct TenantRow {
    id: i64,
    slug: String,
    name: String,
    created_at_ms: i64,
    retention_raw_hours: Option<i32>,
    retention_1m_days: Option<i32>,
    retention_5m_days: Option<i32>,
    max_ingest_metrics_per_s: Option<i64>,
    max_series: Option<i64>,
    raw_expired_before_ms: Option<i64>,
    rollup_1m_expired_before_ms: Option<i64>,
    rollup_5m_expired_before_ms: Option<i64>,
}

/// A method rather than `impl From<TenantRow> for Tenant`: a trait impl on a public type is
/// part of the public API, which holds no row type of the database's.
impl TenantRow {
    fn into_tenant(self) -> Tenant {
        // Stored values were checked to be positive on the way in.
        let setting = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok());
        Tenant {
            id: self.id,
            slug: self.slug,
            name: self.name,
            created_at_ms: self.created_at_ms,
            retention: RetentionOverrides {
                raw_hours: setting(self.retention_raw_hours),
                rollup_1m_days: setting(self.retention_1m_days),
                rollup_5m_days: setting(self.retention_5m_days),
            },
            // Checked to be from 0 to `MAX_QUOTA` on the way in.
            quota: QuotaOverrides {
                max_ingest_metrics_per_s: self.max_ingest_metrics_per_s.and_then(|v| u64::try_from(v).ok()),
                max_series: self.max_series.and_then(|v| u64::try_from(v).ok()),
            },
            expired_before: ExpiredBefore {
                raw_ms: self.raw_expired_before_ms,
                rollup_1m_ms: self.rollup_1m_expired_before_ms,
                rollup_5m_ms: self.rollup_5m_expired_before_ms,
            },
        }
    }
}

/// A change to a tenant's retention ([`Store::set_tenant_retention`]): per setting, `None`
/// keeps it, `Some(None)` returns it to the default, `Some(Some(n))` sets it to `n`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionChange {
    /// Hours of raw points.
    pub raw_hours: Option<Option<i64>>,
    /// Days of 1-minute rollups.
    pub rollup_1m_days: Option<Option<i64>>,
    /// Days of 5-minute rollups.
    pub rollup_5m_days: Option<Option<i64>>,
}

impl RetentionChange {
    /// The settings this change sets or resets, by field name.
    fn fields(&self) -> [(&'static str, Option<Option<i64>>, i64); 3] {
        [
            ("retention_raw_hours", self.raw_hours, MAX_RETENTION_RAW_HOURS),
            ("retention_1m_days", self.rollup_1m_days, MAX_RETENTION_DAYS),
            ("retention_5m_days", self.rollup_5m_days, MAX_RETENTION_DAYS),
        ]
    }

    /// Check this change to a tenant whose own settings are `current`, on a server whose
    /// defaults are `defaults`: each value in range (1 to ten years), and the retention it
    /// leads to keeping each level at least as long as the finer one where the change sets
    /// one of a pair ([`Retention::check_order`]). The error names the field to change; its
    /// message follows the field's name.
    pub fn check(&self, current: RetentionOverrides, defaults: Retention) -> Result<(), (&'static str, String)> {
        let mut changed = Vec::new();
        let mut next = current;
        for (field, value, max) in self.fields() {
            let Some(value) = value else { continue };
            changed.push(field);
            // `check_retention`'s message starts with the field's name, which the caller puts first.
            let without_name = |m: String| m.strip_prefix(field).map_or(m.clone(), |rest| rest.trim_start().to_owned());
            let value =
                value.map(|v| check_retention(field, v, max).map_err(|m| (field, without_name(m)))).transpose()?;
            match field {
                "retention_raw_hours" => next.raw_hours = value,
                "retention_1m_days" => next.rollup_1m_days = value,
                _ => next.rollup_5m_days = value,
            }
        }
        if changed.is_empty() {
            return Ok(());
        }
        RetentionOverrides::over(&next, defaults).check_order(&changed)
    }
}

/// A change to a tenant's quotas ([`Store::update_tenant`]), as [`RetentionChange`] is to its
/// retention: `None` keeps a setting, `Some(None)` returns it to the default, `Some(Some(n))`
/// sets it (`0`: unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaChange {
    /// Metrics a second.
    pub max_ingest_metrics_per_s: Option<Option<i64>>,
    /// Distinct series.
    pub max_series: Option<Option<i64>>,
}

/// A stored token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Database id.
    pub id: i64,
    /// Owning tenant; `None` for admin tokens.
    pub tenant_id: Option<i64>,
    /// Owning tenant's slug, for display.
    pub tenant_slug: Option<String>,
    /// Label.
    pub name: String,
    /// First characters of the token, for recognising it.
    pub prefix: String,
    /// What it may do.
    pub scopes: Scopes,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
    /// Last authenticated use, Unix milliseconds (updated at most once a minute).
    pub last_used_at_ms: Option<i64>,
    /// Revocation time, Unix milliseconds.
    pub revoked_at_ms: Option<i64>,
}

/// Who an authenticated request speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// How it authenticated.
    pub credential: Credential,
    /// The tenant whose data it may touch; `None` for admins.
    pub tenant_id: Option<i64>,
    /// What it may do.
    pub scopes: Scopes,
}

/// A broker account: who may publish into which tenant's topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttAccount {
    /// Broker username (the token's display prefix).
    pub username: String,
    /// Mosquitto password-file hash of the token.
    pub password_hash: String,
    /// The tenant whose topics it may write.
    pub tenant: String,
}

/// The credential behind a [`Principal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Credential {
    /// An API token, by id (for `last_used_at` bookkeeping).
    Token(i64),
    /// A dashboard user's session.
    Session {
        /// The signed-in user.
        user_id: i64,
        /// The session, by id.
        session_id: i64,
    },
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = api_tokens)]
struct TokenRow {
    id: i64,
    tenant_id: Option<i64>,
    name: String,
    prefix: String,
    scopes: String,
    created_at_ms: i64,
    last_used_at_ms: Option<i64>,
    revoked_at_ms: Option<i64>,
}

#[derive(Insertable)]
#[diesel(table_name = tenants)]
struct NewTenant<'a> {
    slug: &'a str,
    name: &'a str,
    created_at_ms: i64,
}

#[derive(Insertable)]
#[diesel(table_name = api_tokens)]
struct NewToken {
    tenant_id: Option<i64>,
    name: String,
    prefix: String,
    token_hash: String,
    scopes: String,
    created_at_ms: i64,
    mqtt_password_hash: Option<String>,
}

pub(crate) fn conflict_as(err: DieselError, what: impl FnOnce() -> String) -> StoreError {
    match err {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => StoreError::conflict(what()),
        other => StoreError::query(other),
    }
}

impl Store {
    /// Create a tenant. Fails with [`ErrorKind::Conflict`](microdash_core::ErrorKind::Conflict) if the slug is taken.
    pub async fn create_tenant(&self, slug: &str, name: &str, now_ms: i64) -> Result<Tenant, StoreError> {
        token::check_slug(slug).map_err(StoreError::invalid)?;
        check_label("tenant name", name)?;
        let row = NewTenant { slug, name: if name.is_empty() { slug } else { name }, created_at_ms: now_ms };
        with_conn!(self, |conn| diesel::insert_into(tenants::table)
            .values(&row)
            .execute(&mut conn)
            .await
            .map_err(|e| conflict_as(e, || format!("tenant {slug:?}")))?);
        self.tenant_by_slug(slug).await?.ok_or_else(|| StoreError::not_found(format!("tenant {slug:?}")))
    }

    /// All tenants, oldest first.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let rows: Vec<TenantRow> = with_conn!(self, |conn| tenants::table
            .select(TenantRow::as_select())
            .order(tenants::id)
            .load(&mut conn)
            .await?);
        Ok(rows.into_iter().map(TenantRow::into_tenant).collect())
    }

    /// The tenant with this slug, if any.
    pub async fn tenant_by_slug(&self, slug: &str) -> Result<Option<Tenant>, StoreError> {
        let row: Option<TenantRow> = with_conn!(self, |conn| tenants::table
            .filter(tenants::slug.eq(slug))
            .select(TenantRow::as_select())
            .first(&mut conn)
            .await
            .optional()?);
        Ok(row.map(TenantRow::into_tenant))
    }

    /// The tenant with this id, if any.
    pub async fn tenant(&self, id: i64) -> Result<Option<Tenant>, StoreError> {
        let row: Option<TenantRow> = with_conn!(self, |conn| tenants::table
            .filter(tenants::id.eq(id))
            .select(TenantRow::as_select())
            .first(&mut conn)
            .await
            .optional()?);
        Ok(row.map(TenantRow::into_tenant))
    }

    /// Change a tenant's own retention: each `Some` replaces that setting (`Some(None)` returns
    /// it to the server's default), each `None` keeps it. Values are checked first (1 to ten
    /// years); an invalid one changes nothing.
    pub async fn set_tenant_retention(&self, tenant_id: i64, change: &RetentionChange) -> Result<Tenant, StoreError> {
        self.update_tenant(tenant_id, change, &QuotaChange::default()).await
    }

    /// Change a tenant's own retention and quotas in one statement, as
    /// [`Store::set_tenant_retention`] does its retention. Every value is checked first
    /// (quotas: 0 to `MAX_QUOTA`); an invalid one changes nothing.
    pub async fn update_tenant(
        &self,
        tenant_id: i64,
        change: &RetentionChange,
        quota: &QuotaChange,
    ) -> Result<Tenant, StoreError> {
        let check = |field: &str, value: Option<Option<i64>>, max: i64| -> Result<Option<Option<i32>>, StoreError> {
            value
                .map(|v| {
                    v.map(|v| check_retention(field, v, max).map(|v| v as i32).map_err(StoreError::invalid)).transpose()
                })
                .transpose()
        };
        let raw = check("retention_raw_hours", change.raw_hours, MAX_RETENTION_RAW_HOURS)?;
        let one = check("retention_1m_days", change.rollup_1m_days, MAX_RETENTION_DAYS)?;
        let five = check("retention_5m_days", change.rollup_5m_days, MAX_RETENTION_DAYS)?;
        let quota_check = |field: &str, value: Option<Option<i64>>| -> Result<Option<Option<i64>>, StoreError> {
            value
                .map(|v| v.map(|v| check_quota(field, v).map(|_| v).map_err(StoreError::invalid)).transpose())
                .transpose()
        };
        let rate = quota_check(MAX_INGEST_METRICS_PER_S, quota.max_ingest_metrics_per_s)?;
        let series = quota_check(MAX_SERIES, quota.max_series)?;
        // Only the settings the change names are written, in one statement: two changes of
        // different settings at once both land (a read, then a write of every setting, lost one).
        let row = (
            raw.map(|v| tenants::retention_raw_hours.eq(v)),
            one.map(|v| tenants::retention_1m_days.eq(v)),
            five.map(|v| tenants::retention_5m_days.eq(v)),
            rate.map(|v| tenants::max_ingest_metrics_per_s.eq(v)),
            series.map(|v| tenants::max_series.eq(v)),
        );
        if [raw.is_some(), one.is_some(), five.is_some(), rate.is_some(), series.is_some()].iter().any(|set| *set) {
            let target = tenants::table.filter(tenants::id.eq(tenant_id));
            with_conn!(self, |conn| diesel::update(target).set(row).execute(&mut conn).await?);
        }
        self.tenant(tenant_id).await?.ok_or_else(|| StoreError::not_found(format!("tenant {tenant_id}")))
    }

    /// Create a token and return it with its secret, which is never stored nor shown again.
    ///
    /// Admin tokens (`tenant_id == None`) must carry the `admin` scope; tenant tokens may not.
    pub async fn create_token(
        &self,
        tenant_id: Option<i64>,
        scopes: Scopes,
        name: &str,
        now_ms: i64,
    ) -> Result<(TokenInfo, String), StoreError> {
        check_label("token name", name)?;
        if scopes.is_empty() {
            return Err(StoreError::invalid("a token needs at least one scope".into()));
        }
        if tenant_id.is_some() == scopes.contains(Scope::Admin) {
            return Err(StoreError::invalid(
                "the admin scope is for tokens without a tenant, and only those tokens may have it".into(),
            ));
        }
        let secret = new_secret()?;
        // Only now is the secret known: keep a broker-compatible hash for tokens that push.
        let mqtt_password_hash = if tenant_id.is_some() && scopes.contains(Scope::Ingest) {
            let mut salt = [0u8; 12];
            getrandom::fill(&mut salt).map_err(|e| StoreError::unavailable(format!("no randomness: {e}")))?;
            Some(microdash_core::mqtt::mosquitto_password_hash(&secret, &salt))
        } else {
            None
        };
        let row = NewToken {
            tenant_id,
            name: name.to_owned(),
            prefix: token::display_prefix(&secret).to_owned(),
            token_hash: token::hash_token(&secret),
            scopes: scopes.to_string(),
            created_at_ms: now_ms,
            mqtt_password_hash,
        };
        with_conn!(self, |conn| diesel::insert_into(api_tokens::table).values(&row).execute(&mut conn).await?);
        let stored: TokenRow = with_conn!(self, |conn| api_tokens::table
            .filter(api_tokens::token_hash.eq(&row.token_hash))
            .select(TokenRow::as_select())
            .first(&mut conn)
            .await?);
        let info = self.describe_tokens(vec![stored]).await?.remove(0);
        Ok((info, secret))
    }

    /// The tokens within `reach`, newest first: every token for [`Reach::Every`], a tenant's
    /// own for [`Reach::Tenant`] (never the admin tokens, which belong to no tenant).
    pub async fn list_tokens(&self, reach: Reach) -> Result<Vec<TokenInfo>, StoreError> {
        // Token tables are small: filtering in memory keeps one query shape for both backends.
        let mut rows: Vec<TokenRow> = with_conn!(self, |conn| api_tokens::table
            .select(TokenRow::as_select())
            .order(api_tokens::id.desc())
            .load(&mut conn)
            .await?);
        rows.retain(|row| reach.covers(row.tenant_id));
        self.describe_tokens(rows).await
    }

    /// Revoke a token within `reach`; it stops authenticating at once. Revoking twice keeps
    /// the first time. A token outside `reach` is [`ErrorKind::NotFound`](microdash_core::ErrorKind::NotFound),
    /// like one that does not exist, so a tenant learns nothing about others' tokens.
    pub async fn revoke_token(&self, reach: Reach, id: i64, now_ms: i64) -> Result<TokenInfo, StoreError> {
        let owner: Option<Option<i64>> = with_conn!(self, |conn| api_tokens::table
            .filter(api_tokens::id.eq(id))
            .select(api_tokens::tenant_id)
            .first(&mut conn)
            .await
            .optional()?);
        // A token's tenant never changes, so checking it before the update cannot race.
        if !owner.is_some_and(|tenant_id| reach.covers(tenant_id)) {
            return Err(StoreError::not_found(format!("token {id}")));
        }
        let target = api_tokens::table.filter(api_tokens::id.eq(id)).filter(api_tokens::revoked_at_ms.is_null());
        with_conn!(self, |conn| diesel::update(target)
            .set(api_tokens::revoked_at_ms.eq(now_ms))
            .execute(&mut conn)
            .await?);
        let row: TokenRow = with_conn!(self, |conn| api_tokens::table
            .filter(api_tokens::id.eq(id))
            .select(TokenRow::as_select())
            .first(&mut conn)
            .await?);
        Ok(self.describe_tokens(vec![row]).await?.remove(0))
    }

    /// Look a bearer token up. `None` for unknown, malformed or revoked tokens.
    pub async fn authenticate(&self, bearer: &str) -> Result<Option<Principal>, StoreError> {
        if !token::looks_like_token(bearer) {
            return Ok(None);
        }
        let query = api_tokens::table
            .filter(api_tokens::token_hash.eq(token::hash_token(bearer)))
            .filter(api_tokens::revoked_at_ms.is_null())
            .select((api_tokens::id, api_tokens::tenant_id, api_tokens::scopes));
        let row: Option<(i64, Option<i64>, String)> =
            with_conn!(self, |conn| query.first(&mut conn).await.optional()?);
        Ok(row.map(|(token_id, tenant_id, scopes)| Principal {
            credential: Credential::Token(token_id),
            tenant_id,
            // Stored scopes were written by `create_token` from a parsed set.
            scopes: scopes.parse().unwrap_or_default(),
        }))
    }

    /// Record that tokens were used at `now_ms`.
    pub async fn touch_tokens(&self, ids: &[i64], now_ms: i64) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let target = api_tokens::table.filter(api_tokens::id.eq_any(ids.to_vec()));
        with_conn!(self, |conn| diesel::update(target)
            .set(api_tokens::last_used_at_ms.eq(now_ms))
            .execute(&mut conn)
            .await?);
        Ok(())
    }

    /// Broker accounts of the active ingest tokens: the token's username, its Mosquitto
    /// password hash and its tenant. Tokens created before MQTT credentials existed have none.
    pub async fn mqtt_accounts(&self) -> Result<Vec<MqttAccount>, StoreError> {
        let rows: Vec<(String, Option<String>, Option<String>)> = with_conn!(self, |conn| api_tokens::table
            .inner_join(tenants::table.on(api_tokens::tenant_id.eq(tenants::id.nullable())))
            .filter(api_tokens::revoked_at_ms.is_null())
            .filter(api_tokens::mqtt_password_hash.is_not_null())
            .select((api_tokens::prefix, api_tokens::mqtt_password_hash, tenants::slug.nullable()))
            .order(api_tokens::id)
            .load(&mut conn)
            .await?);
        Ok(rows
            .into_iter()
            .filter_map(|(username, hash, tenant)| {
                Some(MqttAccount { username, password_hash: hash?, tenant: tenant? })
            })
            .collect())
    }

    /// Whether any unrevoked admin token exists; the first start uses it to explain how to
    /// get one.
    pub async fn has_admin_token(&self) -> Result<bool, StoreError> {
        let query = api_tokens::table
            .filter(api_tokens::tenant_id.is_null())
            .filter(api_tokens::revoked_at_ms.is_null())
            .select(api_tokens::id);
        let found: Option<i64> = with_conn!(self, |conn| query.first(&mut conn).await.optional()?);
        Ok(found.is_some())
    }

    async fn describe_tokens(&self, rows: Vec<TokenRow>) -> Result<Vec<TokenInfo>, StoreError> {
        let tenants = self.list_tenants().await?;
        Ok(rows
            .into_iter()
            .map(|row| TokenInfo {
                id: row.id,
                tenant_id: row.tenant_id,
                tenant_slug: row.tenant_id.and_then(|id| tenants.iter().find(|t| t.id == id)).map(|t| t.slug.clone()),
                name: row.name,
                prefix: row.prefix,
                scopes: row.scopes.parse().unwrap_or_default(),
                created_at_ms: row.created_at_ms,
                last_used_at_ms: row.last_used_at_ms,
                revoked_at_ms: row.revoked_at_ms,
            })
            .collect())
    }
}

/// Longest tenant or token name, in bytes (the MariaDB column width).
pub const MAX_LABEL_BYTES: usize = 200;

pub(crate) fn check_label(what: &str, label: &str) -> Result<(), StoreError> {
    if label.len() > MAX_LABEL_BYTES {
        return Err(StoreError::invalid(format!("{what} is longer than {MAX_LABEL_BYTES} bytes")));
    }
    Ok(())
}

pub(crate) fn new_secret() -> Result<String, StoreError> {
    let mut random = [0u8; 128];
    getrandom::fill(&mut random).map_err(|e| StoreError::unavailable(format!("no randomness: {e}")))?;
    // 128 bytes yield 40 accepted characters with overwhelming probability (each byte is
    // kept with probability 62/64); draw again in the astronomically rare other case.
    match token::token_from_random(&random) {
        Some(secret) => Ok(secret),
        None => new_secret(),
    }
}
