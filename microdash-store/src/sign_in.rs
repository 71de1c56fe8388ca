//! Sign-in attempts, counted in the database per username and per client address.
//!
//! An attempt is counted *before* its password is checked, in one transaction that takes
//! the counters' rows in a fixed order: with a limit of N, at most N attempts per window are
//! ever checked, however many arrive at once and on however many API processes. Rows live
//! in the database, so a restart clears nothing.
//!
//! A window starts with the first attempt after the previous one ended (a fixed window per
//! key); a row whose window ended counts as zero and is swept by
//! [`Store::expire_sign_in_attempts`].

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer};
use diesel_async::RunQueryDsl;

use crate::schema::sign_in_attempts;
use crate::{Store, StoreError, write_with};

/// Longest subject of an [`AttemptKey`] (the column's width).
pub const MAX_ATTEMPT_SUBJECT_BYTES: usize = 128;

/// What a sign-in attempt is counted against.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum AttemptKey {
    /// A client address: an IPv4 address, or an IPv6 /64 network, as text. Ordered before
    /// usernames, the order in which transactions take the rows.
    Address(String),
    /// A username, whether or not such a user exists.
    User(String),
}

impl AttemptKey {
    fn kind(&self) -> &'static str {
        match self {
            AttemptKey::Address(_) => "addr",
            AttemptKey::User(_) => "user",
        }
    }

    fn subject(&self) -> &str {
        match self {
            AttemptKey::Address(s) | AttemptKey::User(s) => s,
        }
    }
}

/// At most `max_attempts` attempts against `key` per window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptLimit {
    /// What is counted.
    pub key: AttemptKey,
    /// Attempts allowed per window; the next one is refused.
    pub max_attempts: u32,
}

/// The answer of [`Store::count_sign_in_attempt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Counted and within every limit: check the password, then settle with
    /// [`Store::sign_in_succeeded`] if it was right.
    Admitted(CountedAttempt),
    /// Counted, and over the limit of `key`: refuse without checking the password.
    Refused {
        /// The limit that was reached (the one that frees up last, when several were).
        key: AttemptKey,
        /// How long until that key's window ends.
        retry_after_ms: i64,
    },
}

/// An attempt as counted: each key with the start of the window it was counted in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountedAttempt {
    windows: Vec<(AttemptKey, i64)>,
}

/// How many times a counting transaction is tried when it collides with another (a
/// MariaDB deadlock with the sweep, or a row swept between its statements).
const COUNT_TRIES: usize = 5;

impl Store {
    /// Count one sign-in attempt against every key of `limits` and say whether it may be
    /// checked. Every attempt counts, refused ones too; each key's window is `window_ms`
    /// long from its first attempt.
    pub async fn count_sign_in_attempt(
        &self,
        limits: &[AttemptLimit],
        window_ms: i64,
        now_ms: i64,
    ) -> Result<Admission, StoreError> {
        let mut limits = limits.to_vec();
        limits.sort_by(|a, b| a.key.cmp(&b.key));
        limits.dedup_by(|a, b| a.key == b.key);
        for limit in &limits {
            check_subject(&limit.key)?;
        }
        if limits.is_empty() {
            return Ok(Admission::Admitted(CountedAttempt { windows: Vec::new() }));
        }
        let mut tries = 0;
        loop {
            tries += 1;
            match self.count_once(&limits, window_ms, now_ms).await {
                Ok(admission) => return Ok(admission),
                // A deadlock, or a row swept between creating and counting it: the
                // transaction was rolled back, so count again.
                Err(err) if tries < COUNT_TRIES && err.kind() == microdash_core::ErrorKind::Unavailable => {
                    tracing::debug!(error = %err, "counting a sign-in attempt collided; trying again");
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn count_once(&self, limits: &[AttemptLimit], window_ms: i64, now_ms: i64) -> Result<Admission, StoreError> {
        // The rows first, each in a statement of its own: on MariaDB, transactions that
        // insert the same new key at once each hold a shared lock on it and then deadlock
        // wanting the exclusive one; existing rows are only ever locked exclusively below.
        for limit in limits {
            let row = (
                sign_in_attempts::kind.eq(limit.key.kind()),
                sign_in_attempts::subject.eq(limit.key.subject().to_owned()),
                sign_in_attempts::window_start_ms.eq(now_ms),
                sign_in_attempts::attempts.eq(0),
            );
            write_with!(self, autocommit, |conn| {
                diesel::insert_or_ignore_into(sign_in_attempts::table).values(row).execute(conn).await?;
                Ok(())
            })?;
        }
        // A window that began at or before `ended` is over: the attempt starts a new one.
        let ended = now_ms - window_ms;
        write_with!(self, transaction, |conn| {
            let mut windows = Vec::with_capacity(limits.len());
            let mut refused: Option<(AttemptKey, i64)> = None;
            for limit in limits {
                let target = sign_in_attempts::table
                    .filter(sign_in_attempts::kind.eq(limit.key.kind()))
                    .filter(sign_in_attempts::subject.eq(limit.key.subject().to_owned()));
                let over = sign_in_attempts::window_start_ms.le(ended);
                // MariaDB assigns left to right: `attempts` is decided while
                // `window_start_ms` still holds the old window (SQLite reads old values anyway).
                let counted = diesel::update(target.clone())
                    .set((
                        sign_in_attempts::attempts.eq(diesel::dsl::case_when(over, 1.into_sql::<Integer>())
                            .otherwise(sign_in_attempts::attempts + 1)),
                        sign_in_attempts::window_start_ms.eq(diesel::dsl::case_when(over, now_ms.into_sql::<BigInt>())
                            .otherwise(sign_in_attempts::window_start_ms)),
                    ))
                    .execute(conn)
                    .await?;
                if counted == 0 {
                    // Swept since it was created; an error rolls back what was counted.
                    return Err(StoreError::unavailable("a sign-in counter was swept while counting".into()).into());
                }
                let (attempts, window_start): (i32, i64) =
                    target.select((sign_in_attempts::attempts, sign_in_attempts::window_start_ms)).first(conn).await?;
                if i64::from(attempts) > i64::from(limit.max_attempts) {
                    // A window another request opened a moment "later" (its clock read first) lasts no longer.
                    let retry_after_ms = (window_start + window_ms - now_ms).clamp(1, window_ms.max(1));
                    if refused.as_ref().is_none_or(|(_, longest)| retry_after_ms > *longest) {
                        refused = Some((limit.key.clone(), retry_after_ms));
                    }
                }
                windows.push((limit.key.clone(), window_start));
            }
            Ok(match refused {
                Some((key, retry_after_ms)) => Admission::Refused { key, retry_after_ms },
                None => Admission::Admitted(CountedAttempt { windows }),
            })
        })
    }

    /// Settle an attempt whose password was right: the username's count starts again from
    /// zero, and the attempt no longer counts against its address (so users signing in
    /// behind one address do not lock each other out, while a right password for one account
    /// buys no guesses at another).
    pub async fn sign_in_succeeded(&self, attempt: &CountedAttempt) -> Result<(), StoreError> {
        for (key, window_start) in &attempt.windows {
            let target = sign_in_attempts::table
                .filter(sign_in_attempts::kind.eq(key.kind()))
                .filter(sign_in_attempts::subject.eq(key.subject().to_owned()));
            match key {
                AttemptKey::User(_) => {
                    write_with!(self, autocommit, |conn| {
                        diesel::delete(target).execute(conn).await?;
                        Ok(())
                    })?;
                }
                AttemptKey::Address(_) => {
                    // Only in the window it was counted in: a later window never counted it.
                    let own_window = target
                        .filter(sign_in_attempts::window_start_ms.eq(*window_start))
                        .filter(sign_in_attempts::attempts.gt(0));
                    write_with!(self, autocommit, |conn| {
                        diesel::update(own_window)
                            .set(sign_in_attempts::attempts.eq(sign_in_attempts::attempts - 1))
                            .execute(conn)
                            .await?;
                        Ok(())
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Delete the counters whose window (`window_ms` long) ended before `now_ms`; they
    /// count as zero already. Returns how many were deleted.
    pub async fn expire_sign_in_attempts(&self, window_ms: i64, now_ms: i64) -> Result<usize, StoreError> {
        let ended = sign_in_attempts::table.filter(sign_in_attempts::window_start_ms.le(now_ms - window_ms));
        write_with!(self, autocommit, |conn| Ok(diesel::delete(ended).execute(conn).await?))
    }
}

fn check_subject(key: &AttemptKey) -> Result<(), StoreError> {
    let subject = key.subject();
    let printable = subject.bytes().all(|b| b.is_ascii_graphic());
    if subject.is_empty() || subject.len() > MAX_ATTEMPT_SUBJECT_BYTES || !printable {
        return Err(StoreError::invalid(format!(
            "a sign-in attempt's {} must be 1 to {MAX_ATTEMPT_SUBJECT_BYTES} printable ASCII characters",
            key.kind()
        )));
    }
    Ok(())
}
