//! The error classification shared across crates.

use serde::{Deserialize, Serialize};

/// What kind of failure an error is, independent of which crate raised it.
///
/// Each library error exposes `kind()`; only the HTTP layer turns a kind into a status code,
/// so that mapping lives in exactly one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The input was well-formed but failed validation.
    Invalid,
    /// The caller is not authenticated.
    Unauthenticated,
    /// The caller is authenticated but lacks the scope or tenant for this action.
    Forbidden,
    /// The thing asked for does not exist (or is not visible to the caller).
    NotFound,
    /// The thing to create already exists.
    Conflict,
    /// A dependency (database, queue) is unavailable; retrying later may succeed.
    Unavailable,
    /// A bug or an unexpected failure.
    Internal,
}
