//! Rollup math: buckets, exact aggregates, retention, and the choice of a resolution.
//!
//! An [`Aggregate`] is what a rollup bucket stores: count, sum, min, max and the latest
//! point. Merging two aggregates is commutative and associative, so a bucket built from
//! batches in any order, by any number of workers, equals the aggregate of its raw points.
//! That is what lets the store maintain rollups as points are written, and lets a query
//! merge stored buckets into coarser ones without losing exactness.

use crate::api::Resolution;

/// One minute in milliseconds.
pub const MINUTE_MS: i64 = 60_000;
/// One hour in milliseconds.
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
/// One day in milliseconds.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Start of the bucket of width `width_ms` that holds `ts_ms` (floor, also before 1970).
pub fn bucket_start(ts_ms: i64, width_ms: i64) -> i64 {
    ts_ms - ts_ms.rem_euclid(width_ms)
}

/// The aggregates of a set of points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aggregate {
    /// How many points.
    pub count: u64,
    /// Their sum, saturating at `±f64::MAX` (MariaDB stores no infinity).
    pub sum: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// Timestamp of the latest point.
    pub last_ms: i64,
    /// Value of the latest point. Of points with the same latest timestamp, the largest
    /// value: a rule that does not depend on the order points arrive in, so concurrent
    /// writers agree with a recomputation from raw.
    pub last: f64,
}

impl Aggregate {
    /// The aggregate of one point.
    pub fn of(ts_ms: i64, value: f64) -> Aggregate {
        Aggregate { count: 1, sum: value, min: value, max: value, last_ms: ts_ms, last: value }
    }

    /// Fold `other` into `self`.
    pub fn merge(&mut self, other: &Aggregate) {
        self.count += other.count;
        self.sum = saturating_sum(self.sum, other.sum);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if (other.last_ms, other.last) > (self.last_ms, self.last) {
            (self.last_ms, self.last) = (other.last_ms, other.last);
        }
    }

    /// The average, `sum / count`.
    pub fn avg(&self) -> f64 {
        self.sum / self.count as f64
    }
}

/// `a + b`, or `±f64::MAX` where that overflows: values near `f64::MAX` are valid metrics, and
/// their bucket must still be storable.
pub fn saturating_sum(a: f64, b: f64) -> f64 {
    let sum = a + b;
    if sum.is_infinite() { f64::MAX.copysign(sum) } else { sum }
}

/// How long each kind of data is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Raw points, in hours.
    pub raw_hours: u32,
    /// 1-minute rollups, in days.
    pub rollup_1m_days: u32,
    /// 5-minute rollups, in days.
    pub rollup_5m_days: u32,
}

impl Default for Retention {
    /// Raw 24 hours, 1-minute rollups 7 days, 5-minute rollups 30 days.
    fn default() -> Self {
        Retention { raw_hours: 24, rollup_1m_days: 7, rollup_5m_days: 30 }
    }
}

/// A tenant's own retention settings; `None` keeps the server's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOverrides {
    /// Raw points, in hours.
    pub raw_hours: Option<u32>,
    /// 1-minute rollups, in days.
    pub rollup_1m_days: Option<u32>,
    /// 5-minute rollups, in days.
    pub rollup_5m_days: Option<u32>,
}

impl RetentionOverrides {
    /// The retention in force: these settings over `defaults`.
    pub fn over(&self, defaults: Retention) -> Retention {
        Retention {
            raw_hours: self.raw_hours.unwrap_or(defaults.raw_hours),
            rollup_1m_days: self.rollup_1m_days.unwrap_or(defaults.rollup_1m_days),
            rollup_5m_days: self.rollup_5m_days.unwrap_or(defaults.rollup_5m_days),
        }
    }
}

/// Largest retention accepted for raw points, in hours (ten years).
pub const MAX_RETENTION_RAW_HOURS: i64 = 87_600;
/// Largest retention accepted for rollups, in days (ten years).
pub const MAX_RETENTION_DAYS: i64 = 3_650;

/// Check a retention setting: a whole number from 1 to `max`. `field` names it in the error.
pub fn check_retention(field: &str, value: i64, max: i64) -> Result<u32, String> {
    if (1..=max).contains(&value) {
        // In range, so it fits.
        Ok(value as u32)
    } else {
        Err(format!("{field} must be a whole number from 1 to {max}, not {value}"))
    }
}

impl Retention {
    /// How long data of `resolution` is kept, in milliseconds.
    pub fn keep_ms(&self, resolution: Resolution) -> i64 {
        match resolution {
            Resolution::Raw => i64::from(self.raw_hours) * HOUR_MS,
            Resolution::Minutes(m) if m < 5 => i64::from(self.rollup_1m_days) * DAY_MS,
            Resolution::Minutes(_) => i64::from(self.rollup_5m_days) * DAY_MS,
        }
    }

    /// The oldest time still kept at `resolution`, at `now_ms`.
    pub fn horizon_ms(&self, resolution: Resolution, now_ms: i64) -> i64 {
        now_ms.saturating_sub(self.keep_ms(resolution))
    }

    /// The pairs of settings where a coarser level is kept for less time than the finer one
    /// before it, as `(finer, coarser)` field names; empty when each level is kept at least as
    /// long as the finer one.
    ///
    /// Refused wherever retention is set: `auto` tells whether raw points fit `max_points`
    /// by counting 1-minute buckets, and a range is answered from the finest level that
    /// still covers it, both of which assume the coarser levels reach at least as far back.
    pub fn misordered(&self) -> Vec<(&'static str, &'static str)> {
        let mut pairs = Vec::new();
        if i64::from(self.raw_hours) * HOUR_MS > i64::from(self.rollup_1m_days) * DAY_MS {
            pairs.push(("retention_raw_hours", "retention_1m_days"));
        }
        if self.rollup_1m_days > self.rollup_5m_days {
            pairs.push(("retention_1m_days", "retention_5m_days"));
        }
        pairs
    }

    /// [`Retention::misordered`] as an error naming the field to change and what is wrong
    /// with it (without the field's name, which the caller puts first). With `changed` (the
    /// settings a request set), only a pair that holds one of them is refused: a request that
    /// leaves both of a pair alone did not make it so, and is not held up by it. With none,
    /// every pair is (the server's defaults at start-up).
    pub fn check_order(&self, changed: &[&str]) -> Result<(), (&'static str, String)> {
        let involved = |field: &str| changed.is_empty() || changed.contains(&field);
        let Some((finer, coarser)) = self.misordered().into_iter().find(|(f, c)| involved(f) || involved(c)) else {
            return Ok(());
        };
        let why = "each level is kept at least as long as the finer one";
        Err(if changed.contains(&coarser) && !changed.contains(&finer) {
            (
                coarser,
                format!(
                    "({}) must not be shorter than {finer} ({}): {why}",
                    self.describe(coarser),
                    self.describe(finer)
                ),
            )
        } else {
            (
                finer,
                format!(
                    "({}) must not be longer than {coarser} ({}): {why}",
                    self.describe(finer),
                    self.describe(coarser)
                ),
            )
        })
    }

    /// A setting's value with its unit, for messages.
    fn describe(&self, field: &str) -> String {
        match field {
            "retention_raw_hours" => format!("{} h", self.raw_hours),
            "retention_1m_days" => format!("{} d", self.rollup_1m_days),
            _ => format!("{} d", self.rollup_5m_days),
        }
    }

    /// The finest stored resolution that still covers `start_ms`, or the coarsest when none
    /// does.
    pub fn finest_covering(&self, start_ms: i64, now_ms: i64) -> Resolution {
        Coverage { retention: *self, expired_before: ExpiredBefore::default() }.finest_covering(start_ms, now_ms)
    }
}

/// How far back the retention task has deleted a tenant's data, per level (Unix ms; `None`:
/// nothing deleted yet). The 30-minute level is deleted with the 5-minute one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpiredBefore {
    /// Raw points.
    pub raw_ms: Option<i64>,
    /// 1-minute buckets.
    pub rollup_1m_ms: Option<i64>,
    /// 5-minute (and 30-minute) buckets.
    pub rollup_5m_ms: Option<i64>,
}

impl ExpiredBefore {
    /// The time before which data of `resolution` may have been deleted.
    pub fn of(&self, resolution: Resolution) -> Option<i64> {
        match resolution {
            Resolution::Raw => self.raw_ms,
            Resolution::Minutes(m) if m < 5 => self.rollup_1m_ms,
            Resolution::Minutes(_) => self.rollup_5m_ms,
        }
    }
}

/// What a tenant's stored data covers: the retention in force and how far data has already
/// been deleted. They differ after a retention is raised: points deleted under the shorter
/// setting do not come back, so until the longer setting's horizon passes the old cutoff,
/// raw (or 1-minute) data starts at the cutoff, not at the horizon, and a range reaching
/// before it must be answered from a coarser level rather than partially.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coverage {
    /// The retention in force.
    pub retention: Retention,
    /// How far the retention task has deleted.
    pub expired_before: ExpiredBefore,
}

impl Coverage {
    /// The oldest time data of `resolution` is complete from, at `now_ms`.
    pub fn horizon_ms(&self, resolution: Resolution, now_ms: i64) -> i64 {
        let kept = self.retention.horizon_ms(resolution, now_ms);
        self.expired_before.of(resolution).map_or(kept, |deleted| kept.max(deleted))
    }

    /// The finest stored resolution whose data is complete from `start_ms`, or the coarsest
    /// when none is.
    pub fn finest_covering(&self, start_ms: i64, now_ms: i64) -> Resolution {
        [Resolution::Raw, Resolution::ONE_MINUTE, Resolution::FIVE_MINUTES]
            .into_iter()
            .find(|r| start_ms >= self.horizon_ms(*r, now_ms))
            .unwrap_or(Resolution::FIVE_MINUTES)
    }
}

/// Bucket widths `auto` may answer with, in minutes: the stored ones, then round multiples
/// of five minutes merged from the 5-minute rollups.
const AUTO_MINUTES: [u32; 13] = [1, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080];

/// The rollup resolution `auto` answers a range with when raw points are not an option:
/// no finer than `finest_retained` (the finest kept for the whole range) whose buckets over
/// `[start_ms, end_ms)` number at most `max_points`.
pub fn auto_rollup(start_ms: i64, end_ms: i64, max_points: usize, finest_retained: Resolution) -> Resolution {
    let floor = finest_retained.bucket_ms().unwrap_or(MINUTE_MS);
    let span = end_ms.saturating_sub(start_ms).max(1);
    let max_points = i64::try_from(max_points.max(1)).unwrap_or(i64::MAX);
    AUTO_MINUTES
        .into_iter()
        .map(Resolution::Minutes)
        .filter(|r| r.bucket_ms().is_some_and(|w| w >= floor))
        .find(|r| r.bucket_ms().is_some_and(|w| buckets_over(start_ms, span, w) <= max_points))
        .unwrap_or(Resolution::Minutes(AUTO_MINUTES[AUTO_MINUTES.len() - 1]))
}

/// How many buckets of width `width_ms` a span starting at `start_ms` touches.
fn buckets_over(start_ms: i64, span_ms: i64, width_ms: i64) -> i64 {
    let first = bucket_start(start_ms, width_ms);
    let last = bucket_start(start_ms.saturating_add(span_ms - 1), width_ms);
    (last - first) / width_ms + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_floor_also_before_the_epoch() {
        assert_eq!(bucket_start(119_999, MINUTE_MS), 60_000);
        assert_eq!(bucket_start(120_000, MINUTE_MS), 120_000);
        assert_eq!(bucket_start(-1, MINUTE_MS), -60_000);
    }

    #[test]
    fn merging_is_order_independent() {
        let points = [(10, 3.0), (30, 1.0), (30, 2.0), (20, 9.0), (5, -4.0)];
        let fold = |order: &[usize]| {
            let mut agg = Aggregate::of(points[order[0]].0, points[order[0]].1);
            for i in &order[1..] {
                agg.merge(&Aggregate::of(points[*i].0, points[*i].1));
            }
            agg
        };
        let forward = fold(&[0, 1, 2, 3, 4]);
        assert_eq!(forward, fold(&[4, 3, 2, 1, 0]));
        assert_eq!(forward, fold(&[2, 0, 4, 1, 3]));
        assert_eq!(forward, Aggregate { count: 5, sum: 11.0, min: -4.0, max: 9.0, last_ms: 30, last: 2.0 });
        assert_eq!(forward.avg(), 2.2);
        let mut huge = Aggregate::of(0, f64::MAX);
        huge.merge(&Aggregate::of(1, f64::MAX));
        assert_eq!((huge.sum, huge.count), (f64::MAX, 2));
    }

    #[test]
    fn retention_picks_the_finest_covering_resolution() {
        let r = Retention::default();
        let now = 100 * DAY_MS;
        let check = |start: i64, want: Resolution| assert_eq!(r.finest_covering(start, now), want, "{start}");
        check(now - HOUR_MS, Resolution::Raw);
        check(now - 24 * HOUR_MS, Resolution::Raw);
        check(now - 24 * HOUR_MS - 1, Resolution::ONE_MINUTE);
        check(now - 7 * DAY_MS, Resolution::ONE_MINUTE);
        check(now - 7 * DAY_MS - 1, Resolution::FIVE_MINUTES);
        check(now - 90 * DAY_MS, Resolution::FIVE_MINUTES);
    }

    #[test]
    fn data_deleted_under_a_shorter_retention_is_not_covered() {
        let now = 100 * DAY_MS;
        // Raw was kept 24 h until now, then raised to 48 h: the day before is gone.
        let retention = Retention { raw_hours: 48, ..Retention::default() };
        let expired_before = ExpiredBefore { raw_ms: Some(now - 24 * HOUR_MS), ..ExpiredBefore::default() };
        let coverage = Coverage { retention, expired_before };
        assert_eq!(coverage.horizon_ms(Resolution::Raw, now), now - 24 * HOUR_MS);
        assert_eq!(coverage.finest_covering(now - 30 * HOUR_MS, now), Resolution::ONE_MINUTE);
        assert_eq!(retention.finest_covering(now - 30 * HOUR_MS, now), Resolution::Raw, "by the setting alone");
        // A day later the longer setting's horizon has passed the old cutoff.
        let later = now + 25 * HOUR_MS;
        assert_eq!(coverage.horizon_ms(Resolution::Raw, later), later - 48 * HOUR_MS);
        // The 30-minute level goes with the 5-minute one.
        let five = Coverage {
            retention,
            expired_before: ExpiredBefore { rollup_5m_ms: Some(now - DAY_MS), ..ExpiredBefore::default() },
        };
        assert_eq!(five.horizon_ms(Resolution::Minutes(30), now), now - DAY_MS);
        assert_eq!(five.horizon_ms(Resolution::ONE_MINUTE, now), now - 7 * DAY_MS);
    }

    #[test]
    fn auto_keeps_each_series_under_max_points() {
        let check = |span: i64, max: usize, finest: Resolution, want: &str| {
            assert_eq!(auto_rollup(0, span, max, finest).to_string(), want, "span {span} max {max}");
        };
        check(HOUR_MS, 1500, Resolution::ONE_MINUTE, "1m");
        check(25 * HOUR_MS, 1500, Resolution::ONE_MINUTE, "1m");
        check(25 * HOUR_MS + 1, 1500, Resolution::ONE_MINUTE, "5m");
        check(7 * DAY_MS, 1500, Resolution::ONE_MINUTE, "10m");
        check(30 * DAY_MS, 1500, Resolution::FIVE_MINUTES, "30m");
        check(HOUR_MS, 1500, Resolution::FIVE_MINUTES, "5m");
        check(HOUR_MS, 10, Resolution::ONE_MINUTE, "10m");
        check(HOUR_MS, 1, Resolution::ONE_MINUTE, "60m");
        // A range that starts mid-bucket touches one bucket more.
        assert_eq!(auto_rollup(30_000, 30_000 + 60 * MINUTE_MS, 60, Resolution::ONE_MINUTE).to_string(), "5m");
    }

    #[test]
    fn retention_settings_are_checked() {
        assert_eq!(check_retention("retention_raw_hours", 48, MAX_RETENTION_RAW_HOURS), Ok(48));
        for bad in [0, -1, MAX_RETENTION_RAW_HOURS + 1] {
            let err = check_retention("retention_raw_hours", bad, MAX_RETENTION_RAW_HOURS).unwrap_err();
            assert!(err.contains("retention_raw_hours"), "{err}");
        }
    }

    #[test]
    fn each_level_is_kept_at_least_as_long_as_the_finer_one() {
        let ok = Retention { raw_hours: 24 * 7, rollup_1m_days: 7, rollup_5m_days: 7 };
        assert!(ok.misordered().is_empty(), "equal is fine");
        assert_eq!(ok.check_order(&[]), Ok(()));
        let raw_too_long = Retention { raw_hours: 24 * 7 + 1, ..ok };
        assert_eq!(raw_too_long.misordered(), [("retention_raw_hours", "retention_1m_days")]);
        let (field, message) = raw_too_long.check_order(&["retention_1m_days"]).unwrap_err();
        assert_eq!(field, "retention_1m_days", "the setting the request changed");
        assert!(message.starts_with("(7 d) must not be shorter than retention_raw_hours (169 h)"), "{message}");
        assert_eq!(raw_too_long.check_order(&[]).unwrap_err().0, "retention_raw_hours");
        assert_eq!(raw_too_long.check_order(&["retention_raw_hours"]).unwrap_err().0, "retention_raw_hours");
        // A request that leaves both of a misordered pair alone is not refused for it.
        assert_eq!(raw_too_long.check_order(&["retention_5m_days"]), Ok(()));
        let one_too_long = Retention { rollup_5m_days: 6, ..ok };
        assert_eq!(one_too_long.misordered(), [("retention_1m_days", "retention_5m_days")]);
        assert_eq!(one_too_long.check_order(&["retention_5m_days"]).unwrap_err().0, "retention_5m_days");
        let both = Retention { raw_hours: 24 * 8, rollup_1m_days: 7, rollup_5m_days: 6 };
        assert_eq!(both.misordered().len(), 2);
        assert_eq!(both.check_order(&["retention_5m_days"]).unwrap_err().0, "retention_5m_days");
        assert!(Retention::default().misordered().is_empty());
    }
}
