//! Per-tenant quotas: how fast a tenant may ingest and how many series it may have.
//!
//! A tenant's own settings ([`QuotaOverrides`]) sit over the server's defaults
//! ([`Quota`]); `0` means unlimited, both as a default and as a tenant's own setting (so one
//! tenant can be exempt from a server-wide limit). Enforcement is the ingest crate's; this
//! module only says what is in force and which values are acceptable.

use serde::{Deserialize, Serialize};

/// The name of the rate limit, as configuration, the API and `429` answers spell it.
pub const MAX_INGEST_METRICS_PER_S: &str = "max_ingest_metrics_per_s";
/// The name of the series limit.
pub const MAX_SERIES: &str = "max_series";
/// Largest value either limit accepts: a billion metrics a second, or a billion series.
pub const MAX_QUOTA: i64 = 1_000_000_000;

/// The quotas in force for a tenant; `0` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Metrics a second the tenant may have accepted, over every source together.
    pub max_ingest_metrics_per_s: u64,
    /// Distinct series (name, agent and tags) the tenant may have.
    pub max_series: u64,
}

/// A tenant's own quotas; what it leaves out (`None`) is the server's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaOverrides {
    /// Its own rate limit, in metrics a second (`Some(0)`: unlimited).
    pub max_ingest_metrics_per_s: Option<u64>,
    /// Its own series limit (`Some(0)`: unlimited).
    pub max_series: Option<u64>,
}

impl QuotaOverrides {
    /// The quotas in force: these settings over `defaults`.
    pub fn over(&self, defaults: Quota) -> Quota {
        Quota {
            max_ingest_metrics_per_s: self.max_ingest_metrics_per_s.unwrap_or(defaults.max_ingest_metrics_per_s),
            max_series: self.max_series.unwrap_or(defaults.max_series),
        }
    }
}

/// Check a quota setting: a whole number from 0 (unlimited) to [`MAX_QUOTA`]. `field` names
/// it in the error.
pub fn check_quota(field: &str, value: i64) -> Result<u64, String> {
    match u64::try_from(value) {
        Ok(v) if value <= MAX_QUOTA => Ok(v),
        _ => Err(format!("{field} must be a whole number from 0 (unlimited) to {MAX_QUOTA}, not {value}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_setting_wins_and_zero_is_unlimited_not_default() {
        let defaults = Quota { max_ingest_metrics_per_s: 1_000, max_series: 100 };
        let own = QuotaOverrides { max_ingest_metrics_per_s: Some(0), max_series: None };
        assert_eq!(own.over(defaults), Quota { max_ingest_metrics_per_s: 0, max_series: 100 });
    }

    #[test]
    fn quota_values_are_checked_by_name() {
        let check = |value: i64, expected: Option<u64>| {
            let got = check_quota(MAX_SERIES, value);
            match expected {
                Some(v) => assert_eq!(got, Ok(v)),
                None => assert!(got.as_ref().is_err_and(|e| e.contains(MAX_SERIES)), "{value}: {got:?}"),
            }
        };
        check(0, Some(0));
        check(5, Some(5));
        check(MAX_QUOTA, Some(MAX_QUOTA as u64));
        check(-1, None);
        check(MAX_QUOTA + 1, None);
    }
}
