//! Errors of the storage layer.
//!
//! [`StoreError`] is opaque on purpose: callers branch on [`StoreError::kind`] (and
//! [`StoreError::is_lease_lost`]) and show its `Display`, so which database library failed
//! and how stays inside this crate, and upgrading it never breaks an embedder. The cause is
//! still reachable for logs through `std::error::Error::source`.
//!
//! Nor does any error of those libraries convert into a `StoreError`: a `From` impl on a
//! public type is public API even when hidden from the docs, so an embedder could build one
//! from a diesel error, and upgrading diesel would break them. The crate's own code converts
//! through the crate-private [`Failure`] instead.

use diesel_async::pooled_connection::PoolError;
use microdash_core::ErrorKind;

/// Everything that can go wrong in [`crate::Store`]: classify it with [`StoreError::kind`].
///
/// Only this crate makes one: no error of the libraries it uses converts into it, so none
/// of them is part of its API. Not diesel's, for one:
///
/// ```compile_fail
/// use microdash_store::StoreError;
/// let _: StoreError = diesel::result::Error::NotFound.into();
/// ```
///
/// nor serde_json's:
///
/// ```compile_fail
/// use microdash_store::StoreError;
/// let _: StoreError = serde_json::from_str::<u8>("x").unwrap_err().into();
/// ```
///
/// nor the connection pool's:
///
/// ```compile_fail
/// use diesel_async::pooled_connection::PoolError;
/// use microdash_store::StoreError;
/// let _: StoreError = bb8::RunError::<PoolError>::TimedOut.into();
/// ```
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StoreError(Repr);

/// The failures behind a [`StoreError`], one variant per cause; private so that no
/// variant (and no diesel type) is part of the public API.
#[derive(Debug, thiserror::Error)]
enum Repr {
    /// The database URL is not one this build understands (shown without its password).
    #[error("unsupported database url {0:?}: use a file path, sqlite://PATH or mysql://...")]
    UnsupportedUrl(String),
    /// No connection could be had from the pool (database down, pool exhausted).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A migration failed; the database is left as it was before that migration.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A query failed.
    #[error("query failed: {0}")]
    Query(#[source] diesel::result::Error),
    /// A row to create collides with an existing one (for example a tenant slug).
    #[error("{0} already exists")]
    Conflict(String),
    /// A named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A write fenced by a lease ([`crate::Fence`]) was refused: its holder no longer holds
    /// the lease. Nothing was stored.
    #[error("lease lost: {0}")]
    LeaseLost(String),
    /// Input rejected before touching the database.
    #[error("{0}")]
    Invalid(String),
    /// A stored payload (a rule, a channel, tags) could not be decoded or encoded.
    #[error("corrupt stored payload: {0}")]
    Corrupt(#[source] serde_json::Error),
}

impl StoreError {
    /// The shared error classification: what an HTTP layer answers, and whether retrying
    /// later may succeed ([`ErrorKind::Unavailable`]: a lost connection, a deadlock, a busy
    /// or full database).
    pub fn kind(&self) -> ErrorKind {
        match &self.0 {
            Repr::Unavailable(_) => ErrorKind::Unavailable,
            Repr::Conflict(_) | Repr::LeaseLost(_) => ErrorKind::Conflict,
            Repr::NotFound(_) => ErrorKind::NotFound,
            Repr::Invalid(_) | Repr::UnsupportedUrl(_) => ErrorKind::Invalid,
            Repr::Query(err) if is_transient(err) => ErrorKind::Unavailable,
            Repr::Migration(_) | Repr::Query(_) | Repr::Corrupt(_) => ErrorKind::Internal,
        }
    }

    /// Whether a write fenced by a lease ([`crate::Fence`]) was refused because its holder
    /// no longer holds the lease (another process leads now); nothing was stored.
    pub fn is_lease_lost(&self) -> bool {
        matches!(self.0, Repr::LeaseLost(_))
    }

    pub(crate) fn unsupported_url(url: String) -> Self {
        Self(Repr::UnsupportedUrl(url))
    }

    pub(crate) fn unavailable(why: String) -> Self {
        Self(Repr::Unavailable(why))
    }

    pub(crate) fn migration(why: String) -> Self {
        Self(Repr::Migration(why))
    }

    pub(crate) fn conflict(what: String) -> Self {
        Self(Repr::Conflict(what))
    }

    pub(crate) fn not_found(what: String) -> Self {
        Self(Repr::NotFound(what))
    }

    pub(crate) fn lease_lost(why: String) -> Self {
        Self(Repr::LeaseLost(why))
    }

    pub(crate) fn invalid(why: String) -> Self {
        Self(Repr::Invalid(why))
    }

    /// A failed query, for code that holds diesel's error itself (outside the macros that
    /// convert it through [`Failure`]).
    pub(crate) fn query(err: diesel::result::Error) -> Self {
        Self(Repr::Query(err))
    }

    /// A payload that would not encode, or a stored one that does not decode.
    pub(crate) fn corrupt(err: serde_json::Error) -> Self {
        Self(Repr::Corrupt(err))
    }

    /// No connection could be had from the pool.
    pub(crate) fn pool(err: bb8::RunError<PoolError>) -> Self {
        Self::unavailable(err.to_string())
    }
}

/// A [`StoreError`] on its way out of this crate's code, which `?` can build from diesel's,
/// serde_json's and the pool's errors; diesel's transactions need such a type too (their
/// error type must be buildable from diesel's).
///
/// `StoreError` itself has no such `From` (see the module's docs). This type is private to
/// the crate, and so are its impls. `with_conn!` and `write_with!` run their bodies with it
/// and hand out a `StoreError` once, through [`Failure::into_store`]; `load_rows!` and the
/// few transactions run outside `write_with!` map diesel's error with `StoreError::query`.
///
/// The doctests on `StoreError` that must not compile name these types; this one shows that
/// the names resolve in a doctest, so those fail only for want of a conversion:
///
/// ```
/// use diesel_async::pooled_connection::PoolError;
/// use microdash_store::StoreError;
/// let _ = diesel::result::Error::NotFound;
/// let _ = serde_json::from_str::<u8>("x").unwrap_err();
/// let _ = bb8::RunError::<PoolError>::TimedOut;
/// let _: Option<StoreError> = None;
/// ```
#[derive(Debug)]
pub(crate) struct Failure(StoreError);

impl Failure {
    /// The error to hand to the store's caller.
    pub(crate) fn into_store(self) -> StoreError {
        self.0
    }
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Self(err)
    }
}

impl From<diesel::result::Error> for Failure {
    fn from(err: diesel::result::Error) -> Self {
        Self(StoreError::query(err))
    }
}

impl From<serde_json::Error> for Failure {
    fn from(err: serde_json::Error) -> Self {
        Self(StoreError::corrupt(err))
    }
}

impl From<bb8::RunError<PoolError>> for Failure {
    fn from(err: bb8::RunError<PoolError>) -> Self {
        Self(StoreError::pool(err))
    }
}

/// Whether a query failed for a reason that goes away by itself: a lost connection, a
/// deadlock, a lock wait, a busy SQLite file, a full or failing disk or a database made
/// read-only (an operator frees space or lifts it; until then workers hold their batches
/// rather than dead-letter them). MariaDB says so as 1114 "The table ... is full", 1021 "Disk
/// full", 1030 "Got error 28 "No space left on device"" and 1290/1836 "read-only". diesel-async
/// reports MySQL I/O and driver failures, and SQLite reports `SQLITE_BUSY`, `SQLITE_FULL`
/// and `SQLITE_IOERR`, only as `Unknown` with a message, so the message decides.
fn is_transient(err: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    const TRANSIENT: [&str; 10] = [
        "deadlock",
        "lock wait timeout",
        "database is locked",
        "database or disk is full",
        "readonly database",
        "unable to open database file",
        "is full",
        "disk full",
        "no space left on device",
        "read-only",
    ];
    ends_connection(err)
        || matches!(err, Error::DatabaseError(DatabaseErrorKind::Unknown, info)
            if TRANSIENT.iter().any(|t| info.message().to_ascii_lowercase().contains(t)))
}

/// Whether a query failed because its connection is gone (or may be: an I/O error, a
/// timeout), so the connection must not be used again.
pub(crate) fn ends_connection(err: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    const LOST: [&str; 8] = [
        "input/output",
        "io error",
        "i/o error",
        "connection",
        "broken pipe",
        "timed out",
        "gone away",
        "driver error",
    ];
    match err {
        Error::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _) => true,
        Error::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            let message = info.message().to_ascii_lowercase();
            LOST.iter().any(|t| message.contains(t))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use diesel::result::{DatabaseErrorKind, Error};

    fn check(kind: DatabaseErrorKind, message: &str, ends_connection: bool, transient: bool) {
        let err = Error::DatabaseError(kind, Box::new(message.to_owned()));
        assert_eq!(super::ends_connection(&err), ends_connection, "{message}");
        assert_eq!(super::is_transient(&err), transient, "{message}");
    }

    #[test]
    fn lost_connections_are_told_from_other_failures() {
        use DatabaseErrorKind::{ClosedConnection, UniqueViolation, Unknown};
        check(Unknown, "Input/output error: Driver error: `Connection to the server is closed.'", true, true);
        check(Unknown, "Input/output error: Broken pipe (os error 32)", true, true);
        check(ClosedConnection, "closed", true, true);
        check(Unknown, "Deadlock found when trying to get lock; try restarting transaction", false, true);
        check(Unknown, "database or disk is full", false, true);
        check(Unknown, "The table 'points' is full", false, true);
        check(Unknown, "Got error 28 \"No space left on device\" from storage engine InnoDB", false, true);
        check(Unknown, "Disk full (/tmp/#sql_1.MAI); waiting for someone to free some space...", false, true);
        check(
            Unknown,
            "The MariaDB server is running with the --read-only option so it cannot execute this statement",
            false,
            true,
        );
        check(Unknown, "Unknown column 'x' in 'field list'", false, false);
        check(UniqueViolation, "Duplicate entry", false, false);
    }

    /// What `?` makes of each library's error through `Failure` (and the direct constructors
    /// the same): the kind and message callers see.
    fn check_converted(failure: super::Failure, kind: microdash_core::ErrorKind, message: &str) {
        let err = failure.into_store();
        assert_eq!((err.kind(), err.to_string().as_str()), (kind, message));
    }

    #[test]
    fn converted_errors_keep_their_kind_and_message() {
        use microdash_core::ErrorKind::{Internal, NotFound, Unavailable};
        let deadlock = || Error::DatabaseError(DatabaseErrorKind::Unknown, Box::new("Deadlock found".to_owned()));
        check_converted(deadlock().into(), Unavailable, "query failed: Deadlock found");
        check_converted(super::StoreError::query(deadlock()).into(), Unavailable, "query failed: Deadlock found");
        check_converted(Error::NotFound.into(), Internal, &format!("query failed: {}", Error::NotFound));
        let garbled = serde_json::from_str::<u8>("x").unwrap_err();
        let message = format!("corrupt stored payload: {garbled}");
        check_converted(garbled.into(), Internal, &message);
        let timed_out = bb8::RunError::<diesel_async::pooled_connection::PoolError>::TimedOut;
        let message = format!("database unavailable: {timed_out}");
        check_converted(timed_out.into(), Unavailable, &message);
        check_converted(super::StoreError::not_found("tenant 7".into()).into(), NotFound, "tenant 7 not found");
    }
}
