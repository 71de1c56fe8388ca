//! Dashboard users and their browser sessions.
//!
//! Passwords are stored as Argon2id PHC strings (a slow, salted KDF: unlike API tokens, people
//! choose guessable secrets). Hashing and verifying take tens of milliseconds of CPU, so they
//! run on the blocking pool. A session is a random secret in an HttpOnly cookie; only its
//! SHA-256 is stored, like an API token's.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use microdash_core::token::{self, Scopes};

use crate::admin::{Credential, Principal, conflict_as, new_secret};
use crate::schema::{api_tokens, sessions, tenants, users};
use crate::{Store, StoreError, with_conn};

/// Ids per query when checking many credentials at once (well below every backend's
/// limit on bound parameters).
const CREDENTIALS_PER_QUERY: usize = 500;

/// Shortest accepted password.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest accepted password, in bytes (bounds the hashing work an attacker can ask for).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A dashboard user, without the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Database id.
    pub id: i64,
    /// Sign-in name.
    pub username: String,
    /// The tenant the user belongs to; `None` for admins, who see every tenant.
    pub tenant_id: Option<i64>,
    /// That tenant's slug.
    pub tenant_slug: Option<String>,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
}

impl User {
    /// What a session of this user may do: admins administer, tenant users read and push
    /// their tenant's metrics and manage its alerts.
    pub fn scopes(&self) -> Scopes {
        let scopes = if self.tenant_id.is_some() { "ingest,read,alerts" } else { "admin" };
        scopes.parse().unwrap_or_default()
    }
}

/// Usernames: 1 to 64 of lowercase letters, digits, `.`, `_`, `-`.
pub fn check_username(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok { Ok(()) } else { Err("must be 1 to 64 of lowercase letters, digits, '.', '_' and '-'".into()) }
}

/// A random 20-character password (about 119 bits), for generated credentials.
pub fn generate_password() -> Result<String, StoreError> {
    let secret = new_secret()?;
    Ok(secret[token::TOKEN_PREFIX.len()..][..20].to_owned())
}

/// Passwords: at least [`MIN_PASSWORD_CHARS`] characters, at most [`MAX_PASSWORD_BYTES`] bytes.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("needs at least {MIN_PASSWORD_CHARS} characters (and at most {MAX_PASSWORD_BYTES} bytes)"));
    }
    Ok(())
}

fn password_allowed(password: &str) -> Result<(), StoreError> {
    check_password(password).map_err(|m| StoreError::invalid(format!("a password {m}")))
}

/// Argon2 work running at once, bounded by the cores: each costs ~19 MiB and tens of
/// milliseconds of CPU, and a flood of sign-ins must queue here, not exhaust memory or the
/// blocking pool that SQLite queries also need.
fn hashing_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())))
}

async fn hashing_slot() -> Result<tokio::sync::SemaphorePermit<'static>, StoreError> {
    hashing_slots().acquire().await.map_err(|e| StoreError::unavailable(format!("password hashing stopped: {e}")))
}

async fn hash_password(password: &str) -> Result<String, StoreError> {
    let password = password.to_owned();
    let _slot = hashing_slot().await?;
    tokio::task::spawn_blocking(move || {
        Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| StoreError::unavailable(format!("password hashing stopped: {e}")))?
    .map_err(|e| StoreError::invalid(format!("password cannot be hashed: {e}")))
}

/// The hash of a random password nobody knows: unknown usernames are verified against it,
/// so a failed sign-in takes as long whether or not the user exists.
static DECOY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

async fn verify_password(password: &str, hash: Option<String>) -> bool {
    let known = hash.is_some();
    let password = password.to_owned();
    let Ok(_slot) = hashing_slot().await else { return false };
    let verified = tokio::task::spawn_blocking(move || {
        let hash = hash.unwrap_or_else(|| {
            DECOY_HASH
                .get_or_init(|| {
                    let decoy = new_secret().unwrap_or_default();
                    Argon2::default().hash_password(decoy.as_bytes()).map(|h| h.to_string()).unwrap_or_default()
                })
                .clone()
        });
        Argon2::default().verify_password(password.as_bytes(), hash.as_str()).is_ok()
    })
    .await
    .unwrap_or(false);
    known && verified
}

#[derive(Insertable)]
#[diesel(table_name = users)]
struct NewUser<'a> {
    username: &'a str,
    password_hash: &'a str,
    tenant_id: Option<i64>,
    created_at_ms: i64,
}

#[derive(Insertable)]
#[diesel(table_name = sessions)]
struct NewSession<'a> {
    token_hash: &'a str,
    user_id: i64,
    created_at_ms: i64,
    expires_at_ms: i64,
}

/// Which users a lookup wants.
#[derive(Clone, Copy)]
enum Which<'a> {
    All,
    Name(&'a str),
    Id(i64),
}

type UserRow = (i64, String, Option<i64>, Option<String>, i64);

fn user_from(row: UserRow) -> User {
    let (id, username, tenant_id, tenant_slug, created_at_ms) = row;
    User { id, username, tenant_id, tenant_slug, created_at_ms }
}

impl Store {
    /// Create a user of `tenant_id` (or an admin, with `None`).
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        tenant_id: Option<i64>,
        now_ms: i64,
    ) -> Result<User, StoreError> {
        check_username(username).map_err(|m| StoreError::invalid(format!("username {m}")))?;
        password_allowed(password)?;
        let password_hash = hash_password(password).await?;
        let row = NewUser { username, password_hash: &password_hash, tenant_id, created_at_ms: now_ms };
        with_conn!(self, |conn| diesel::insert_into(users::table)
            .values(&row)
            .execute(&mut conn)
            .await
            .map_err(|e| conflict_as(e, || format!("user {username:?}")))?);
        self.user_by_name(username).await?.ok_or_else(|| StoreError::not_found(format!("user {username:?}")))
    }

    /// Replace a user's password and end their sessions.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<User, StoreError> {
        password_allowed(password)?;
        let user =
            self.user_by_name(username).await?.ok_or_else(|| StoreError::not_found(format!("user {username:?}")))?;
        let password_hash = hash_password(password).await?;
        with_conn!(self, |conn| diesel::update(users::table.filter(users::id.eq(user.id)))
            .set(users::password_hash.eq(&password_hash))
            .execute(&mut conn)
            .await?);
        with_conn!(self, |conn| diesel::delete(sessions::table.filter(sessions::user_id.eq(user.id)))
            .execute(&mut conn)
            .await?);
        Ok(user)
    }

    /// The user with this name, if any.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        Ok(self.users(Which::Name(username)).await?.pop())
    }

    /// The user with this id, if any.
    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        Ok(self.users(Which::Id(id)).await?.pop())
    }

    /// Every user, oldest first.
    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.users(Which::All).await
    }

    async fn users(&self, which: Which<'_>) -> Result<Vec<User>, StoreError> {
        let rows: Vec<UserRow> = with_conn!(self, |conn| {
            let mut query = users::table
                .left_join(tenants::table.on(users::tenant_id.eq(tenants::id.nullable())))
                .select((users::id, users::username, users::tenant_id, tenants::slug.nullable(), users::created_at_ms))
                .order(users::id)
                .into_boxed();
            match which {
                Which::All => {}
                Which::Name(name) => query = query.filter(users::username.eq(name.to_owned())),
                Which::Id(id) => query = query.filter(users::id.eq(id)),
            }
            query.load(&mut conn).await?
        });
        Ok(rows.into_iter().map(user_from).collect())
    }

    /// Delete a user and their sessions. `false` if there was no such user.
    pub async fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        let Some(user) = self.user_by_name(username).await? else { return Ok(false) };
        with_conn!(self, |conn| diesel::delete(sessions::table.filter(sessions::user_id.eq(user.id)))
            .execute(&mut conn)
            .await?);
        with_conn!(self, |conn| diesel::delete(users::table.filter(users::id.eq(user.id))).execute(&mut conn).await?);
        Ok(true)
    }

    /// Check a username and password; on success open a session lasting `ttl_ms` and return
    /// the user and the session secret (for the cookie; never stored). `None` when the
    /// credentials are wrong, without saying which part.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<(User, String)>, StoreError> {
        if password.len() > MAX_PASSWORD_BYTES || check_username(username).is_err() {
            return Ok(None);
        }
        let hash: Option<String> = with_conn!(self, |conn| users::table
            .filter(users::username.eq(username))
            .select(users::password_hash)
            .first(&mut conn)
            .await
            .optional()?);
        if !verify_password(password, hash).await {
            return Ok(None);
        }
        let Some(user) = self.user_by_name(username).await? else { return Ok(None) };
        let secret = new_secret()?;
        let token_hash = token::hash_token(&secret);
        let row = NewSession {
            token_hash: &token_hash,
            user_id: user.id,
            created_at_ms: now_ms,
            expires_at_ms: now_ms + ttl_ms,
        };
        with_conn!(self, |conn| diesel::insert_into(sessions::table).values(&row).execute(&mut conn).await?);
        // Expired sessions are of no further use; sign-ins are rare enough to sweep them here.
        let expired = sessions::table.filter(sessions::expires_at_ms.le(now_ms));
        with_conn!(self, |conn| diesel::delete(expired).execute(&mut conn).await?);
        Ok(Some((user, secret)))
    }

    /// The signed-in user of a session cookie, if the session exists and has not expired.
    pub async fn session_user(&self, secret: &str, now_ms: i64) -> Result<Option<User>, StoreError> {
        Ok(self.session(secret, now_ms).await?.map(|(_, user)| user))
    }

    async fn session(&self, secret: &str, now_ms: i64) -> Result<Option<(i64, User)>, StoreError> {
        if !token::looks_like_token(secret) {
            return Ok(None);
        }
        let row: Option<(i64, i64)> = with_conn!(self, |conn| sessions::table
            .filter(sessions::token_hash.eq(token::hash_token(secret)))
            .filter(sessions::expires_at_ms.gt(now_ms))
            .select((sessions::id, sessions::user_id))
            .first(&mut conn)
            .await
            .optional()?);
        let Some((session_id, user_id)) = row else { return Ok(None) };
        Ok(self.user_by_id(user_id).await?.map(|user| (session_id, user)))
    }

    /// Authenticate a session cookie as a [`Principal`].
    pub async fn authenticate_session(&self, secret: &str, now_ms: i64) -> Result<Option<Principal>, StoreError> {
        Ok(self.session(secret, now_ms).await?.map(|(session_id, user)| Principal {
            credential: Credential::Session { user_id: user.id, session_id },
            tenant_id: user.tenant_id,
            scopes: user.scopes(),
        }))
    }

    /// Whether a credential that authenticated earlier still does: its token not revoked,
    /// its session not ended or expired (its user not deleted).
    pub async fn still_valid(&self, credential: Credential, now_ms: i64) -> Result<bool, StoreError> {
        Ok(!self.valid_credentials(&[credential], now_ms).await?.is_empty())
    }

    /// Which of `credentials` still authenticate (see [`Store::still_valid`]), in a few
    /// queries however many there are: what the open streams and MQTT connections of a
    /// process are checked with, periodically.
    pub async fn valid_credentials(
        &self,
        credentials: &[Credential],
        now_ms: i64,
    ) -> Result<Vec<Credential>, StoreError> {
        let mut token_ids: Vec<i64> = Vec::new();
        let mut session_ids: Vec<i64> = Vec::new();
        for credential in credentials {
            match credential {
                Credential::Token(id) => token_ids.push(*id),
                Credential::Session { session_id, .. } => session_ids.push(*session_id),
            }
        }
        let mut live_tokens = std::collections::HashSet::new();
        for chunk in token_ids.chunks(CREDENTIALS_PER_QUERY) {
            let found: Vec<i64> = with_conn!(self, |conn| api_tokens::table
                .filter(api_tokens::id.eq_any(chunk.to_vec()))
                .filter(api_tokens::revoked_at_ms.is_null())
                .select(api_tokens::id)
                .load(&mut conn)
                .await?);
            live_tokens.extend(found);
        }
        let mut live_sessions = std::collections::HashSet::new();
        for chunk in session_ids.chunks(CREDENTIALS_PER_QUERY) {
            let found: Vec<i64> = with_conn!(self, |conn| sessions::table
                .filter(sessions::id.eq_any(chunk.to_vec()))
                .filter(sessions::expires_at_ms.gt(now_ms))
                .select(sessions::id)
                .load(&mut conn)
                .await?);
            live_sessions.extend(found);
        }
        Ok(credentials
            .iter()
            .copied()
            .filter(|credential| match credential {
                Credential::Token(id) => live_tokens.contains(id),
                Credential::Session { session_id, .. } => live_sessions.contains(session_id),
            })
            .collect())
    }

    /// End a session (sign out) and return its id; unknown secrets are ignored (`None`).
    pub async fn sign_out(&self, secret: &str) -> Result<Option<i64>, StoreError> {
        let hash = token::hash_token(secret);
        let session_id: Option<i64> = with_conn!(self, |conn| sessions::table
            .filter(sessions::token_hash.eq(&hash))
            .select(sessions::id)
            .first(&mut conn)
            .await
            .optional()?);
        let Some(session_id) = session_id else { return Ok(None) };
        with_conn!(self, |conn| diesel::delete(sessions::table.filter(sessions::id.eq(session_id)))
            .execute(&mut conn)
            .await?);
        Ok(Some(session_id))
    }
}
