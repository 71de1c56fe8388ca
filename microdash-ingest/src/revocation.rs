//! Revocation: a revoked token, an ended session or a deleted user loses its open live
//! streams, long polls and MQTT connections within a second, on every process.
//!
//! Every long-lived connection takes a [`Hold`] on the credential it authenticated with,
//! from this process's [`Holds`]: a cancellation token registered under that credential.
//! Two things end holds:
//!
//! - The bus. [`Revoker`] changes the store first, then ends this process's holds of what it
//!   revoked at once and, with the Redis queue, publishes a [`Revoked`] on
//!   `{prefix}:revocations`, which every process's watcher hears and acts on alike. The
//!   admin commands announce through Redis the same way.
//! - The recheck. The watcher also asks the store, every
//!   [`RevocationConfig::recheck_interval`] (500 ms), which of the credentials held in the
//!   process still authenticate (a few queries for all of them, none when nothing is held),
//!   and ends the holds of the rest: what the bus missed (a Redis restart, a revocation made
//!   straight in the database, a session that expired, a deployment without Redis).
//!
//! The watcher starts with [`crate::Runtime::serve`] and [`crate::Runtime::run_endpoint`],
//! or else with the first hold, and lives as long as the [`Holds`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use microdash_store::{Credential, Reach, Store, StoreError, TokenInfo, User};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::clock::now_ms;
use crate::queue::{Queue, RedisQueue};

/// What was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Revoked {
    /// An API token, by id.
    Token(i64),
    /// A dashboard session, by id (signed out).
    Session(i64),
    /// Every session of a user, by user id (the user was deleted or their password changed).
    User(i64),
}

impl Revoked {
    /// Whether a connection authenticated with `credential` must end.
    pub fn covers(self, credential: Credential) -> bool {
        match (self, credential) {
            (Revoked::Token(id), Credential::Token(held)) => id == held,
            (Revoked::Session(id), Credential::Session { session_id, .. }) => id == session_id,
            (Revoked::User(id), Credential::Session { user_id, .. }) => id == user_id,
            _ => false,
        }
    }
}

/// Revocation settings.
#[derive(Debug, Clone)]
pub struct RevocationConfig {
    /// How often the credentials of open connections are checked in the store, for what the
    /// bus did not announce. Below a second, so that even then a revocation takes effect
    /// within one.
    pub recheck_interval: Duration,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        Self { recheck_interval: Duration::from_millis(500) }
    }
}

/// The credentials held by this process's open long-lived connections. Share it behind an
/// `Arc`.
pub struct Holds {
    store: Store,
    redis: Option<RedisQueue>,
    config: RevocationConfig,
    next_id: AtomicU64,
    state: Mutex<HoldsState>,
}

#[derive(Default)]
struct HoldsState {
    held: HashMap<u64, (Credential, CancellationToken)>,
    watching: bool,
}

/// One connection's claim on a credential: [`Hold::ended`] resolves once the credential is
/// revoked. Dropping it (the connection closed) lets go.
pub struct Hold {
    id: u64,
    cancel: CancellationToken,
    holds: Arc<Holds>,
}

impl Hold {
    /// Resolves once the credential no longer authenticates.
    pub fn ended(&self) -> WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    /// Whether the credential was revoked.
    pub fn is_ended(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.holds.lock().held.remove(&self.id);
    }
}

impl Holds {
    /// Holds of a process whose store is `store`; with a Redis `queue`, the watcher also
    /// follows the revocations other processes announce there.
    pub(crate) fn new(store: Store, queue: &Queue, config: RevocationConfig) -> Arc<Self> {
        let redis = match queue {
            Queue::Redis(redis) => Some(redis.clone()),
            Queue::Memory(_) => None,
        };
        Arc::new(Self { store, redis, config, next_id: AtomicU64::new(0), state: Mutex::default() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HoldsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register a connection authenticated with `credential`. Starts the watcher if it is
    /// not running yet.
    pub fn hold(self: &Arc<Self>, credential: Credential) -> Hold {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let cancel = CancellationToken::new();
        self.lock().held.insert(id, (credential, cancel.clone()));
        self.watch();
        Hold { id, cancel, holds: self.clone() }
    }

    /// End every hold `revoked` covers; returns how many.
    pub fn end(&self, revoked: Revoked) -> usize {
        let ended = self.end_where(|credential| revoked.covers(credential));
        if ended > 0 {
            tracing::info!(?revoked, connections = ended, "ended the connections of a revoked credential");
        }
        ended
    }

    /// Connections open under some credential.
    pub fn len(&self) -> usize {
        self.lock().held.len()
    }

    /// Whether no connection is open under any credential.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn end_where(&self, mut condemned: impl FnMut(Credential) -> bool) -> usize {
        let state = self.lock();
        let mut ended = 0;
        for (credential, cancel) in state.held.values() {
            if condemned(*credential) && !cancel.is_cancelled() {
                cancel.cancel();
                ended += 1;
            }
        }
        ended
    }

    /// Start the watcher, unless it runs already. It stops once the holds are dropped.
    pub(crate) fn watch(self: &Arc<Self>) {
        let mut state = self.lock();
        if state.watching {
            return;
        }
        state.watching = true;
        drop(state);
        tokio::spawn(watch(Arc::downgrade(self)));
    }

    /// Check every held credential in the store once; end the holds of those that no longer
    /// authenticate. A store that cannot answer ends nothing (the next round asks again).
    async fn recheck(&self) {
        let asked: HashSet<Credential> = self.lock().held.values().map(|(credential, _)| *credential).collect();
        if asked.is_empty() {
            return;
        }
        let credentials: Vec<Credential> = asked.iter().copied().collect();
        match self.store.valid_credentials(&credentials, now_ms()).await {
            Ok(valid) => {
                let valid: HashSet<Credential> = valid.into_iter().collect();
                // Connections opened meanwhile under another credential were not asked about.
                let ended = self.end_where(|c| asked.contains(&c) && !valid.contains(&c));
                if ended > 0 {
                    tracing::info!(connections = ended, "ended connections whose credential no longer authenticates");
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot recheck the credentials of open connections"),
        }
    }
}

/// The watcher: the Redis bus (when there is one) and the periodic recheck, until `holds`
/// is dropped.
async fn watch(holds: Weak<Holds>) {
    let (interval, redis) = match holds.upgrade() {
        Some(holds) => (holds.config.recheck_interval.max(Duration::from_millis(10)), holds.redis.clone()),
        None => return,
    };
    let mut recheck = tokio::time::interval(interval);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut bus = None;
    let mut resubscribe_at = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        if let (Some(redis), None) = (&redis, &bus)
            && tokio::time::Instant::now() >= resubscribe_at
        {
            // Bounded, so a Redis that does not answer never holds up the recheck.
            match tokio::time::timeout(Duration::from_secs(1), redis.subscribe_revocations()).await {
                Ok(Ok(messages)) => {
                    tracing::debug!("following revocations on Redis");
                    bus = Some(messages);
                    delay = Duration::from_millis(100);
                }
                failed => {
                    let error = match failed {
                        Ok(Err(err)) => err.to_string(),
                        _ => "timed out".to_owned(),
                    };
                    tracing::warn!(%error, "cannot follow revocations on Redis; rechecking the store meanwhile");
                    resubscribe_at = tokio::time::Instant::now() + delay;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        tokio::select! {
            _ = recheck.tick() => {
                let Some(holds) = holds.upgrade() else { return };
                holds.recheck().await;
            }
            message = async { bus.as_mut()?.next().await }, if bus.is_some() => {
                let Some(holds) = holds.upgrade() else { return };
                match message {
                    Some(message) => match serde_json::from_slice::<Revoked>(message.get_payload_bytes()) {
                        Ok(revoked) => {
                            holds.end(revoked);
                        }
                        Err(err) => tracing::warn!(error = %err, "undecodable revocation message"),
                    },
                    None => {
                        tracing::warn!("the Redis revocation subscription closed; resubscribing");
                        bus = None;
                        // Whatever was announced meanwhile is found by asking the store.
                        holds.recheck().await;
                    }
                }
            }
        }
    }
}

/// Revokes credentials and announces it: the store first, then this process's holds (with
/// `Revoker::with_holds`) and, with Redis, every other process's. Cheap to clone.
#[derive(Clone)]
pub struct Revoker {
    store: Store,
    holds: Option<Arc<Holds>>,
    redis: Option<RedisQueue>,
}

impl Revoker {
    /// A revoker for a process with no connections of its own (the admin commands): it
    /// announces through `redis` when given one; other processes' rechecks notice either way.
    pub fn new(store: Store, redis: Option<RedisQueue>) -> Self {
        Self { store, holds: None, redis }
    }

    /// A revoker that also ends the connections held in this process.
    pub(crate) fn with_holds(holds: Arc<Holds>) -> Self {
        Self { store: holds.store.clone(), redis: holds.redis.clone(), holds: Some(holds) }
    }

    /// Revoke an API token within `reach` ([`Store::revoke_token`]) and end its connections.
    pub async fn revoke_token(&self, reach: Reach, id: i64, now_ms: i64) -> Result<TokenInfo, StoreError> {
        let info = self.store.revoke_token(reach, id, now_ms).await?;
        self.announce(Revoked::Token(id)).await;
        Ok(info)
    }

    /// Delete a user ([`Store::delete_user`]) and end their sessions' connections. `false`
    /// if there was no such user.
    pub async fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        let Some(user) = self.store.user_by_name(username).await? else { return Ok(false) };
        let deleted = self.store.delete_user(username).await?;
        self.announce(Revoked::User(user.id)).await;
        Ok(deleted)
    }

    /// Change a user's password ([`Store::set_password`]), which ends their sessions, and
    /// end those sessions' connections.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<User, StoreError> {
        let user = self.store.set_password(username, password).await?;
        self.announce(Revoked::User(user.id)).await;
        Ok(user)
    }

    /// Sign a session out ([`Store::sign_out`]) and end its connections.
    pub async fn sign_out(&self, secret: &str) -> Result<(), StoreError> {
        if let Some(session_id) = self.store.sign_out(secret).await? {
            self.announce(Revoked::Session(session_id)).await;
        }
        Ok(())
    }

    /// Tell every process that `revoked` no longer authenticates. Best effort beyond this
    /// process: a failed publish is logged, and the other processes' rechecks find it.
    pub async fn announce(&self, revoked: Revoked) {
        if let Some(holds) = &self.holds {
            holds.end(revoked);
        }
        if let Some(redis) = &self.redis
            && let Err(err) = redis.publish_revocation(&revoked).await
        {
            tracing::warn!(?revoked, error = %err, "announcing a revocation on Redis failed; other processes notice at their next recheck");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(user_id: i64, session_id: i64) -> Credential {
        Credential::Session { user_id, session_id }
    }

    #[test]
    fn a_revocation_covers_its_own_credentials_only() {
        let cases = [
            (Revoked::Token(1), Credential::Token(1), true),
            (Revoked::Token(1), Credential::Token(2), false),
            (Revoked::Token(1), session(1, 1), false),
            (Revoked::Session(7), session(1, 7), true),
            (Revoked::Session(7), session(7, 8), false),
            (Revoked::User(3), session(3, 9), true),
            (Revoked::User(3), session(4, 3), false),
            (Revoked::User(3), Credential::Token(3), false),
        ];
        for (revoked, credential, covered) in cases {
            assert_eq!(revoked.covers(credential), covered, "{revoked:?} {credential:?}");
        }
    }

    #[test]
    fn revocations_cross_the_bus_as_json() {
        for revoked in [Revoked::Token(5), Revoked::Session(6), Revoked::User(7)] {
            let wire = serde_json::to_string(&revoked).unwrap_or_default();
            assert_eq!(serde_json::from_str::<Revoked>(&wire).ok(), Some(revoked), "{wire}");
        }
        assert_eq!(serde_json::to_string(&Revoked::User(7)).ok().as_deref(), Some(r#"{"kind":"user","id":7}"#));
    }
}
