//! A sliding window of one series' recent points, and the aggregates rules compare.

use std::collections::VecDeque;

use microdash_core::alert::AlertRule;
use microdash_core::api::alert::Aggregate;
use microdash_core::rollup::Aggregate as Summary;

use crate::state::Observation;

/// Points one window keeps at most, by default: 16 bytes each, so at most 160 KB per series.
/// A series sending more than this within a rule's window is aggregated over its latest
/// points only.
pub const DEFAULT_MAX_POINTS: usize = 10_000;

/// The recent points of one series, ordered by time, enough for windows up to `span_s`.
///
/// Points may arrive late and out of order; they are kept sorted. Points older than the span
/// (counted back from the newest point) are dropped as new ones arrive, and so are the oldest
/// beyond the point cap, so memory stays bounded whatever the series sends.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesWindow {
    /// `(timestamp ms, value, origin)`, sorted by timestamp; equal timestamps in arrival
    /// order.
    points: VecDeque<(i64, f64, Origin)>,
    /// How far back from the newest point to keep, ms.
    span_ms: i64,
    /// Most points kept.
    max_points: usize,
    /// The newest timestamp ever pushed, kept past eviction for no-data detection.
    latest_ms: Option<i64>,
}

/// Where a point came from: what tells one point seen twice from two equal points (a batch
/// of events sent without timestamps shares the time it was received, and often the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Read back from the store when evaluation started. Equal to a point already read back,
    /// it is the same point read by two queries.
    ReadBack,
    /// Announced as just stored, with a `dedupe_id`. Equal to any point held, it is the same
    /// point again: a retried delivery the store dropped, or one also read back.
    Identified,
    /// Announced as just stored, without a `dedupe_id`. Equal only to a point read back is it
    /// the same point (the store keeps every such point, and so does the window).
    Anonymous,
}

impl SeriesWindow {
    /// A window for aggregates over up to `span_s` seconds (the largest `window_s` of the
    /// rules watching the series), holding at most [`DEFAULT_MAX_POINTS`].
    pub fn new(span_s: u32) -> Self {
        Self::with_max_points(span_s, DEFAULT_MAX_POINTS)
    }

    /// A window holding at most `max_points` (at least one).
    pub fn with_max_points(span_s: u32, max_points: usize) -> Self {
        Self {
            points: VecDeque::new(),
            span_ms: i64::from(span_s) * 1000,
            max_points: max_points.max(1),
            latest_ms: None,
        }
    }

    /// Change the span, when the rules watching the series change.
    pub fn set_span_s(&mut self, span_s: u32) {
        self.span_ms = i64::from(span_s) * 1000;
        self.evict();
    }

    /// Add a point, wherever in time it falls, unless [`Origin`] says it is one already held
    /// (same time, same value) seen again.
    pub fn push(&mut self, ts_ms: i64, value: f64, origin: Origin) {
        self.latest_ms = Some(self.latest_ms.map_or(ts_ms, |latest| latest.max(ts_ms)));
        let same_time = self.points.partition_point(|&(ts, _, _)| ts < ts_ms);
        let at = self.points.partition_point(|&(ts, _, _)| ts <= ts_ms);
        let seen = self.points.range(same_time..at).any(|&(_, v, held)| {
            v.to_bits() == value.to_bits()
                && match origin {
                    Origin::Identified => true,
                    Origin::ReadBack | Origin::Anonymous => held == Origin::ReadBack,
                }
        });
        if seen {
            return;
        }
        match self.points.back() {
            Some(&(last, _, _)) if ts_ms < last => {
                if ts_ms < last - self.span_ms {
                    return; // Too late to fall in any window.
                }
                self.points.insert(at, (ts_ms, value, origin));
            }
            _ => self.points.push_back((ts_ms, value, origin)),
        }
        self.evict();
    }

    /// Drop what the span and the cap no longer need.
    fn evict(&mut self) {
        if let Some(&(newest, _, _)) = self.points.back() {
            let oldest_kept = newest.saturating_sub(self.span_ms);
            while self.points.front().is_some_and(|&(ts, _, _)| ts < oldest_kept) {
                self.points.pop_front();
            }
        }
        while self.points.len() > self.max_points {
            self.points.pop_front();
        }
    }

    /// The aggregate of the points in `(now_ms - window_s, now_ms]`; with `window_s` 0, of the
    /// latest point at or before `now_ms` (for every aggregate, so `count` is 1, unless several
    /// points share that timestamp). Points after
    /// `now_ms` are ignored, so an evaluation at a given time always gives the same answer.
    /// `None` when no point falls in the window. Windows longer than the span see only what
    /// the span kept.
    pub fn aggregate(&self, aggregate: Aggregate, window_s: u32, now_ms: i64) -> Option<f64> {
        let end = self.points.partition_point(|&(ts, _, _)| ts <= now_ms);
        let start = if window_s == 0 {
            // Every point at the latest timestamp, so `last` breaks ties as rollups do.
            let (latest, _, _) = self.points[end.checked_sub(1)?];
            self.points.partition_point(|&(ts, _, _)| ts < latest)
        } else {
            let after = now_ms.saturating_sub(i64::from(window_s) * 1000);
            self.points.partition_point(|&(ts, _, _)| ts <= after)
        };
        let mut points = self.points.range(start..end).map(|&(ts, value, _)| Summary::of(ts, value));
        let mut summary = points.next()?;
        for point in points {
            summary.merge(&point);
        }
        Some(match aggregate {
            Aggregate::Last => summary.last,
            Aggregate::Avg => summary.avg(),
            Aggregate::Min => summary.min,
            Aggregate::Max => summary.max,
            Aggregate::Sum => summary.sum,
            Aggregate::Count => summary.count as f64,
        })
    }

    /// The newest timestamp ever pushed, even if it has since been evicted.
    pub fn latest_ms(&self) -> Option<i64> {
        self.latest_ms
    }

    /// What `rule` sees of this series at `now_ms`: its aggregate over its window and the
    /// time of the latest point.
    pub fn observe(&self, rule: &AlertRule, now_ms: i64) -> Observation {
        Observation { value: self.aggregate(rule.aggregate, rule.window_s, now_ms), latest_ms: self.latest_ms }
    }

    /// Points held.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether no point is held.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_point_seen_twice_counts_once_and_equal_points_each_count() {
        use Origin::*;
        let mut window = SeriesWindow::new(60);
        // Read back twice (two overlapping queries), then announced: one point.
        window.push(1_000, 5.0, ReadBack);
        window.push(1_000, 5.0, ReadBack);
        window.push(1_000, 5.0, Anonymous);
        window.push(1_000, 6.0, Anonymous);
        window.push(2_000, 5.0, ReadBack);
        assert_eq!(window.aggregate(Aggregate::Count, 60, 2_000), Some(3.0));
        assert_eq!(window.aggregate(Aggregate::Sum, 60, 2_000), Some(16.0));
        // Three equal events of one batch, no dedupe id: three points, as the store keeps.
        for _ in 0..3 {
            window.push(3_000, 1.0, Anonymous);
        }
        assert_eq!(window.aggregate(Aggregate::Count, 1, 3_000), Some(3.0));
        // With a dedupe id, the same point delivered again is one.
        window.push(4_000, 1.0, Identified);
        window.push(4_000, 1.0, Identified);
        assert_eq!(window.aggregate(Aggregate::Count, 1, 4_000), Some(1.0));
    }

    const T: i64 = 1_700_000_000_000;

    fn window(points: &[(i64, f64)]) -> SeriesWindow {
        let mut window = SeriesWindow::new(3600);
        for &(offset_s, value) in points {
            window.push(T + offset_s * 1000, value, Origin::Anonymous);
        }
        window
    }

    /// `(aggregate, window_s, now as seconds after T, expected)`.
    fn check(window: &SeriesWindow, rows: &[(Aggregate, u32, i64, Option<f64>)]) {
        for &(aggregate, window_s, now_s, expected) in rows {
            assert_eq!(
                window.aggregate(aggregate, window_s, T + now_s * 1000),
                expected,
                "{aggregate:?} {window_s}s at +{now_s}s"
            );
        }
    }

    #[test]
    fn aggregates_cover_the_half_open_window() {
        // Pushed out of order on purpose.
        let w = window(&[(30, 3.0), (10, 1.0), (20, 2.0), (40, 4.0)]);
        use Aggregate::*;
        check(
            &w,
            &[
                (Last, 0, 40, Some(4.0)),
                (Last, 0, 35, Some(3.0)),
                (Last, 0, 5, None),
                (Count, 0, 40, Some(1.0)),
                (Avg, 0, 40, Some(4.0)),
                // (40 - 20, 40]: 30 and 40; 20 itself is out.
                (Avg, 20, 40, Some(3.5)),
                (Count, 20, 40, Some(2.0)),
                (Sum, 30, 40, Some(9.0)),
                (Min, 30, 40, Some(2.0)),
                (Max, 30, 35, Some(3.0)),
                (Last, 30, 35, Some(3.0)),
                (Count, 3600, 40, Some(4.0)),
                // Nothing in (50, 60].
                (Avg, 10, 60, None),
                (Last, 10, 60, None),
                // A later `now` still sees the latest point with window 0.
                (Last, 0, 86_400, Some(4.0)),
            ],
        );
    }

    #[test]
    fn equal_timestamps_count_twice_and_last_takes_the_larger() {
        let w = window(&[(10, 5.0), (10, 7.0), (10, 6.0)]);
        check(
            &w,
            &[
                (Aggregate::Last, 0, 10, Some(7.0)),
                (Aggregate::Count, 60, 10, Some(3.0)),
                (Aggregate::Sum, 0, 10, Some(18.0)),
            ],
        );
    }

    #[test]
    fn old_points_are_evicted_by_span_and_cap() {
        let mut w = SeriesWindow::new(60);
        for s in 0..=120 {
            w.push(T + s * 1000, s as f64, Origin::Anonymous);
        }
        // From 60 to 120 inclusive are within 60 s of the newest.
        assert_eq!(w.len(), 61);
        assert_eq!(w.aggregate(Aggregate::Min, 3600, T + 120_000), Some(60.0));
        // Too late for any window: dropped, but it still counts as data for no-data.
        w.push(T, -1.0, Origin::Anonymous);
        assert_eq!(w.len(), 61);
        // A late point inside the span is kept, in order.
        w.push(T + 100_500, 1000.0, Origin::Anonymous);
        assert_eq!(w.aggregate(Aggregate::Max, 1, T + 101_000), Some(1000.0));
        assert_eq!(w.latest_ms(), Some(T + 120_000));
        w.set_span_s(10);
        assert_eq!(w.len(), 11);

        let mut capped = SeriesWindow::with_max_points(3600, 3);
        for s in 0..10 {
            capped.push(T + s * 1000, s as f64, Origin::Anonymous);
        }
        assert_eq!(capped.len(), 3);
        assert_eq!(capped.aggregate(Aggregate::Avg, 3600, T + 9000), Some(8.0));
        let mut zero = SeriesWindow::new(0);
        zero.push(T, 1.0, Origin::Anonymous);
        zero.push(T + 1000, 2.0, Origin::Anonymous);
        assert_eq!((zero.len(), zero.aggregate(Aggregate::Last, 0, T + 1000)), (1, Some(2.0)));
    }

    #[test]
    fn observe_uses_the_rules_aggregate_and_window() {
        let rule: AlertRule = serde_json::from_value::<microdash_core::api::alert::AlertRuleIn>(serde_json::json!({
            "name": "x", "metric_name": "cpu", "operator": ">", "critical": 1, "aggregate": "max", "window_s": 25
        }))
        .unwrap()
        .validate()
        .unwrap();
        let w = window(&[(10, 9.0), (20, 2.0), (40, 4.0)]);
        assert_eq!(w.observe(&rule, T + 40_000), Observation { value: Some(4.0), latest_ms: Some(T + 40_000) });
        // (11, 36]: 9 at 10 s has left the window.
        assert_eq!(w.observe(&rule, T + 36_000), Observation { value: Some(2.0), latest_ms: Some(T + 40_000) });
        assert!(SeriesWindow::new(60).is_empty());
        assert_eq!(SeriesWindow::new(60).observe(&rule, T), Observation::default());
    }
}
