//! Errors of the storage layer.

use microdash_core::ErrorKind;

/// Everything that can go wrong in [`crate::Store`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
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
    Query(#[from] diesel::result::Error),
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
    /// A stored payload (dead letter) could not be decoded.
    #[error("corrupt stored payload: {0}")]
    Corrupt(#[from] serde_json::Error),
}

impl StoreError {
    /// The shared error classification.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Unavailable(_) => ErrorKind::Unavailable,
            StoreError::Conflict(_) | StoreError::LeaseLost(_) => ErrorKind::Conflict,
            StoreError::NotFound(_) => ErrorKind::NotFound,
            StoreError::Invalid(_) | StoreError::UnsupportedUrl(_) => ErrorKind::Invalid,
            StoreError::Query(err) if is_transient(err) => ErrorKind::Unavailable,
            StoreError::Migration(_) | StoreError::Query(_) | StoreError::Corrupt(_) => ErrorKind::Internal,
        }
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

impl From<bb8::RunError<diesel_async::pooled_connection::PoolError>> for StoreError {
    fn from(err: bb8::RunError<diesel_async::pooled_connection::PoolError>) -> Self {
        StoreError::Unavailable(err.to_string())
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
}
