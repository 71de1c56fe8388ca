//! API tokens: their text format, scopes and the hash under which they are stored.
//!
//! A token is `mdk_` followed by 40 base62 characters (~238 bits of entropy). The prefix
//! makes leaked tokens easy to find with secret scanners; the entropy makes a plain SHA-256
//! an adequate storage hash (no slow KDF is needed for random secrets, and lookups stay
//! cheap on every request).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Every token starts with this.
pub const TOKEN_PREFIX: &str = "mdk_";
/// Random characters after the prefix.
pub const TOKEN_RANDOM_CHARS: usize = 40;
/// How many leading characters listings show to identify a token.
pub const DISPLAY_PREFIX_CHARS: usize = 12;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Build a token from random bytes. Bytes that would bias the alphabet are skipped, so pass
/// at least twice [`TOKEN_RANDOM_CHARS`] bytes; returns `None` if they ran out.
pub fn token_from_random(random: &[u8]) -> Option<String> {
    let mut token = String::with_capacity(TOKEN_PREFIX.len() + TOKEN_RANDOM_CHARS);
    token.push_str(TOKEN_PREFIX);
    // Rejection sampling: 6 bits give 0..64, keep only 0..62 so each character is uniform.
    let chars = random.iter().map(|b| b & 63).filter(|v| *v < 62).take(TOKEN_RANDOM_CHARS);
    token.extend(chars.map(|v| BASE62[usize::from(v)] as char));
    (token.len() == TOKEN_PREFIX.len() + TOKEN_RANDOM_CHARS).then_some(token)
}

/// Whether `s` has the shape of a token; lets auth reject garbage without a database lookup.
pub fn looks_like_token(s: &str) -> bool {
    s.len() == TOKEN_PREFIX.len() + TOKEN_RANDOM_CHARS
        && s.starts_with(TOKEN_PREFIX)
        && s[TOKEN_PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Hex SHA-256 of the token: the only form in which tokens are stored.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The recognisable start of a token, safe to store and display.
pub fn display_prefix(token: &str) -> &str {
    token.get(..DISPLAY_PREFIX_CHARS).unwrap_or(token)
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Push metrics.
    Ingest,
    /// Query metrics and stream them.
    Read,
    /// Manage tenants and tokens (admin tokens belong to no tenant).
    Admin,
    /// Create, change and delete the tenant's alert rules and notification channels.
    Alerts,
}

impl Scope {
    const ALL: [Scope; 4] = [Scope::Ingest, Scope::Read, Scope::Admin, Scope::Alerts];

    fn bit(self) -> u8 {
        match self {
            Scope::Ingest => 1,
            Scope::Read => 2,
            Scope::Admin => 4,
            Scope::Alerts => 8,
        }
    }

    /// The scope as written in scope lists.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
            Scope::Alerts => "alerts",
        }
    }
}

/// A set of scopes, written as a comma-separated list (`ingest,read`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// Whether the set contains `scope`.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Scopes(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

/// A scope list that names an unknown scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}; known scopes are ingest, read, admin and alerts")]
pub struct UnknownScope(pub String);

impl FromStr for Scopes {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| Scope::ALL.into_iter().find(|scope| scope.name() == p).ok_or_else(|| UnknownScope(p.to_owned())))
            .collect()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = Scope::ALL.into_iter().filter(|s| self.contains(*s)).map(Scope::name).collect();
        // `pad`, so that a width (`{:<14}` in the admin CLI's table) applies.
        f.pad(&names.join(","))
    }
}

/// Written as on the wire and in the CLI: the comma-separated list (`ingest,read`).
impl serde::Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Read from the comma-separated list; an unknown scope is an error naming it.
impl<'de> serde::Deserialize<'de> for Scopes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Tenant slugs appear in URLs and MQTT topics: lowercase letters, digits and `-`, 1 to 63.
pub fn check_slug(slug: &str) -> Result<(), String> {
    let ok = !slug.is_empty()
        && slug.len() <= 63
        && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-');
    if ok { Ok(()) } else { Err(format!("invalid slug {slug:?}: use 1 to 63 of a-z, 0-9 and '-'")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shape_and_hash() {
        let random: Vec<u8> = (0..=255).collect();
        let token = token_from_random(&random).unwrap();
        assert!(looks_like_token(&token), "{token}");
        assert!(!looks_like_token("mdk_short"));
        assert!(!looks_like_token(&token.replace("mdk_", "xyz_")));
        assert_eq!(hash_token(&token).len(), 64);
        assert_ne!(hash_token(&token), hash_token(&token_from_random(&random[1..]).unwrap()));
        assert_eq!(display_prefix(&token), &token[..12]);
        assert_eq!(token_from_random(&[62; 100]), None, "bytes that are all rejected run out");
    }

    #[test]
    fn scopes_parse_and_print() {
        let check = |input: &str, printed: Result<&str, ()>| {
            assert_eq!(
                input.parse::<Scopes>().map(|s| s.to_string()).map_err(|_| ()),
                printed.map(str::to_owned),
                "{input}"
            );
        };
        check("ingest,read", Ok("ingest,read"));
        check("read, ingest", Ok("ingest,read"));
        check("admin", Ok("admin"));
        check("alerts,read", Ok("read,alerts"));
        check("", Ok(""));
        check("write", Err(()));
        let s: Scopes = "read".parse().unwrap();
        assert!(s.contains(Scope::Read) && !s.contains(Scope::Ingest));
    }

    #[test]
    fn scopes_travel_as_the_comma_separated_list() {
        let scopes: Scopes = "read,ingest".parse().unwrap();
        assert_eq!(serde_json::to_string(&scopes).unwrap(), r#""ingest,read""#);
        assert_eq!(serde_json::from_str::<Scopes>(r#""read, ingest""#).unwrap(), scopes);
        let err = serde_json::from_str::<Scopes>(r#""read,write""#).unwrap_err().to_string();
        assert!(err.contains("\"write\"") && err.contains("alerts"), "{err}");
        // A width pads it, as the admin CLI's table needs.
        assert_eq!(format!("[{scopes:<13}]"), "[ingest,read  ]");
    }

    #[test]
    fn slugs() {
        assert!(check_slug("acme-1").is_ok());
        for bad in ["", "Acme", "a/b", "-a", &"x".repeat(64)] {
            assert!(check_slug(bad).is_err(), "{bad}");
        }
    }
}
