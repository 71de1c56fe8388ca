//! What a chart is given to draw: its layout (lines, colours, min-max bands, tick spacings)
//! and one frame of data, aligned on a shared time column the way the chart library wants it,
//! with gaps where a series stopped.
//!
//! The data is encoded for a cheap hand-over to JavaScript: one `f64` per cell, with two
//! values that no metric can have (the API accepts only finite values) standing for the two
//! kinds of "nothing" the library tells apart: [`GAP`] breaks the line (`null`), [`ABSENT`]
//! is an alignment artifact the line passes over (`undefined`, a time where another series
//! has a point).

use serde::Serialize;

use super::units::Unit;
use super::{Sample, Series, SeriesId, Widget};

/// Line colours: distinguishable with common colour-vision deficiencies and at least 3:1
/// against the dark chart background (WCAG 2.1 non-text contrast).
pub const PALETTE: [&str; 8] = ["#56b4e9", "#e69f00", "#2fd4a0", "#f0e442", "#e07bb5", "#ff7f50", "#8fa8ff", "#c4c4c4"];
/// Dash patterns (canvas line dashes, in pixels) of an agent's second, third... series of one
/// chart (disk usage per mount), which share the agent's colour.
pub const DASHES: [&[f64]; 4] = [&[], &[6.0, 3.0], &[2.0, 3.0], &[8.0, 3.0, 2.0, 3.0]];
/// A cell where the line breaks: the series stopped there.
pub const GAP: f64 = f64::NAN;
/// A cell where the series has no point but another one does; the line passes over it.
pub const ABSENT: f64 = f64::INFINITY;
/// Consecutive raw points further apart than this many typical intervals are a gap.
pub const GAP_FACTOR: f64 = 2.5;
/// Rollup buckets typically (median) holding this many points or more come from an agent that
/// reports more often than the bucket width: any missing bucket is a gap.
pub const DENSE_BUCKET_COUNT: u64 = 2;

/// The colour of an agent's lines, the same in every chart and view: a hash of its id (FNV-1a,
/// stable across builds, unlike std's hasher) picks the palette entry.
pub fn agent_color(agent: &str) -> &'static str {
    let hash = agent.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    PALETTE[hash as usize % PALETTE.len()]
}

/// One series of the chart library (after the time column).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// Legend and tooltip name.
    pub label: String,
    /// CSS colour.
    pub color: &'static str,
    /// Canvas dash pattern; empty for a solid line.
    pub dash: &'static [f64],
    /// An edge of a min-max band rather than a line: not stroked, not in the tooltip.
    pub band_edge: bool,
}

/// How a chart is set up. A chart is rebuilt only when its layout changes (a new series, a
/// band appearing); new data alone goes through [`Frame`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layout {
    /// Value lines first, then the band edges (upper, lower) of the series that have them.
    pub lines: Vec<Line>,
    /// `[upper, lower]` indices of band edges, counted as the chart library counts series
    /// (the time column is 0), each with the index of the line it belongs to.
    pub bands: Vec<Band>,
    /// Tick spacings for the value axis, when the unit needs its own (see
    /// [`Unit::increments`]).
    pub increments: Option<Vec<f64>>,
}

/// A min-max band around one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Band {
    /// Series index of the line.
    pub line: usize,
    /// Series index of the upper edge (max).
    pub upper: usize,
    /// Series index of the lower edge (min).
    pub lower: usize,
}

/// One frame of a chart's data.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Frame {
    /// The time column, Unix seconds (the library's default time scale), ascending.
    pub xs: Vec<f64>,
    /// One column per [`Layout::lines`] entry, each as long as `xs`.
    pub columns: Vec<Vec<f64>>,
    /// Value axis range, when the unit fixes it.
    pub y_range: Option<(f64, f64)>,
    /// Points inside the window, over all series.
    pub points: usize,
    /// Gaps inside the window, over all series.
    pub gaps: usize,
}

/// One cell of a series before alignment.
#[derive(Clone, Copy)]
enum Cell {
    Point(Sample),
    Gap,
}

/// The largest distance between consecutive points of `series` that is not a gap. `None`
/// with too few points to tell.
///
/// - Raw points (no `bucket_ms`): [`GAP_FACTOR`] times the typical (median) interval.
/// - Rollup buckets that typically hold [`DENSE_BUCKET_COUNT`] points or more: the agent
///   reports more often than the bucket width, so every bucket should be there and any
///   missing one is a gap: bucket starts more than 1.5 widths apart. Waiting for two missing
///   buckets would hide an outage of up to two buckets (one whole empty bucket is all a
///   two-minute stop leaves in 1-minute buckets when it starts mid-bucket).
/// - Other rollups (about one point per bucket, or counts unknown): one missing bucket is
///   allowed, since jitter around the bucket width can leave one empty, and the series may be
///   [`GAP_FACTOR`] times its median interval apart: at least two bucket widths.
pub fn gap_threshold_ms(series: &Series, bucket_ms: Option<i64>) -> Option<i64> {
    let samples = series.samples();
    let mut deltas: Vec<i64> = samples.iter().zip(samples.iter().skip(1)).map(|(a, b)| b.ts - a.ts).collect();
    if deltas.is_empty() {
        return None;
    }
    let typical = (median(&mut deltas) as f64 * GAP_FACTOR) as i64;
    let mut counts: Vec<u64> = samples.iter().filter_map(|s| s.count).collect();
    let dense = !counts.is_empty() && median(&mut counts) >= DENSE_BUCKET_COUNT;
    Some(match bucket_ms {
        None => typical,
        Some(bucket) if dense => bucket * 3 / 2,
        Some(bucket) => typical.max(2 * bucket),
    })
}

/// The middle value of non-empty `values` (the upper one of an even count), reordering them.
fn median<T: Ord + Copy>(values: &mut [T]) -> T {
    let middle = values.len() / 2;
    *values.select_nth_unstable(middle).1
}

/// The layout and data of `widget`'s chart over `window` (Unix milliseconds). One point on
/// each side of the window is kept, so lines run to the chart's edges.
pub fn frame(widget: &Widget, window: (i64, i64)) -> (Layout, Frame) {
    let unit = Unit::of(&widget.metric);
    let bucket_ms = widget.resolution.bucket_ms();
    let mut lines = Vec::new();
    let mut banded = Vec::new();
    let mut cells: Vec<Vec<(i64, Cell)>> = Vec::new();
    let (mut points, mut gaps) = (0, 0);
    let mut y_extent: Option<(f64, f64)> = None;
    let mut previous_agent: Option<&str> = None;
    let mut nth_of_agent = 0;
    for (id, series) in &widget.series {
        nth_of_agent = if previous_agent == Some(id.agent.as_str()) { nth_of_agent + 1 } else { 0 };
        previous_agent = Some(id.agent.as_str());
        let samples = series.samples();
        let lo = samples.partition_point(|s| s.ts < window.0).saturating_sub(1);
        let hi = (samples.partition_point(|s| s.ts <= window.1) + 1).min(samples.len());
        let threshold = gap_threshold_ms(series, bucket_ms);
        let mut column = Vec::with_capacity(hi.saturating_sub(lo) + 4);
        let mut previous: Option<i64> = None;
        for sample in samples.range(lo..hi) {
            let inside = (window.0..=window.1).contains(&sample.ts);
            if let (Some(before), Some(threshold)) = (previous, threshold)
                && sample.ts - before > threshold
            {
                let middle = before + (sample.ts - before) / 2;
                column.push((middle, Cell::Gap));
                gaps += usize::from((window.0..=window.1).contains(&middle));
            }
            if inside {
                points += 1;
                let (low, high) = sample.band.unwrap_or((sample.value, sample.value));
                let (lo_v, hi_v) = (low.min(sample.value), high.max(sample.value));
                y_extent = Some(y_extent.map_or((lo_v, hi_v), |(a, b)| (a.min(lo_v), b.max(hi_v))));
            }
            column.push((sample.ts, Cell::Point(*sample)));
            previous = Some(sample.ts);
        }
        if samples.range(lo..hi).any(|s| s.band.is_some()) {
            banded.push(lines.len());
        }
        lines.push(Line {
            label: id.label(),
            color: color_of(id),
            dash: DASHES[nth_of_agent % DASHES.len()],
            band_edge: false,
        });
        cells.push(column);
    }

    let mut xs: Vec<i64> = cells.iter().flatten().map(|c| c.0).collect();
    xs.sort_unstable();
    xs.dedup();
    let align = |column: &[(i64, Cell)], read: &dyn Fn(&Sample) -> f64| -> Vec<f64> {
        let mut out = Vec::with_capacity(xs.len());
        let mut next = column.iter().peekable();
        for x in &xs {
            match next.peek() {
                Some((ts, cell)) if ts == x => {
                    out.push(match cell {
                        Cell::Point(sample) => read(sample),
                        Cell::Gap => GAP,
                    });
                    next.next();
                }
                _ => out.push(ABSENT),
            }
        }
        out
    };
    let mut columns: Vec<Vec<f64>> = cells.iter().map(|c| align(c, &|s| s.value)).collect();
    let mut bands = Vec::new();
    for &line in &banded {
        let label = lines[line].label.clone();
        let color = lines[line].color;
        for (edge, pick) in [("max", true), ("min", false)] {
            lines.push(Line { label: format!("{label} {edge}"), color, dash: &[], band_edge: true });
            columns.push(align(&cells[line], &|s: &Sample| match s.band {
                Some((low, high)) => {
                    if pick {
                        high
                    } else {
                        low
                    }
                }
                None => s.value,
            }));
        }
        bands.push(Band { line: line + 1, upper: lines.len() - 1, lower: lines.len() });
    }
    let layout = Layout { lines, bands, increments: unit.increments() };
    let frame = Frame {
        xs: xs.iter().map(|ms| *ms as f64 / 1000.0).collect(),
        columns,
        y_range: unit.fixed_range(y_extent),
        points,
        gaps,
    };
    (layout, frame)
}

/// A series' colour: its agent's, or, for a series without an agent, its tags'.
pub fn color_of(id: &SeriesId) -> &'static str {
    agent_color(if id.agent.is_empty() { &id.tags } else { &id.agent })
}

#[cfg(test)]
mod tests {
    use microdash_core::api::Resolution;
    use std::collections::BTreeMap;

    use super::*;

    fn raw(points: &[(i64, f64)]) -> Series {
        let mut s = Series::default();
        points.iter().for_each(|&(ts, v)| s.push(ts, v));
        s
    }

    fn widget(metric: &str, series: Vec<(&str, &str, Series)>, resolution: Resolution) -> Widget {
        let series: BTreeMap<SeriesId, Series> = series
            .into_iter()
            .map(|(agent, tags, s)| (SeriesId { agent: agent.into(), tags: tags.into() }, s))
            .collect();
        Widget { metric: metric.into(), series, resolution, ..Widget::default() }
    }

    #[test]
    fn an_agent_has_one_colour_whatever_else_is_on_the_chart() {
        assert_eq!(agent_color("web-1"), agent_color("web-1"));
        let alone = widget("cpu.usage_percent", vec![("web-1", "", raw(&[(0, 1.0)]))], Resolution::Raw);
        let crowded = widget(
            "mem.used_bytes",
            vec![("a", "", raw(&[(0, 1.0)])), ("web-1", "", raw(&[(0, 1.0)])), ("z", "", raw(&[(0, 1.0)]))],
            Resolution::Raw,
        );
        let color = |w: &Widget| frame(w, (0, 10)).0.lines.iter().find(|l| l.label == "web-1").map(|l| l.color);
        assert_eq!(color(&alone), color(&crowded));
        let spread: std::collections::HashSet<_> = (0..40).map(|i| agent_color(&format!("host-{i}"))).collect();
        assert!(spread.len() >= 6, "ids spread over the palette: {spread:?}");
    }

    #[test]
    fn series_align_on_one_time_column_and_lines_pass_over_other_series_points() {
        let w = widget(
            "x",
            vec![("a", "", raw(&[(1000, 1.0), (3000, 3.0)])), ("b", "", raw(&[(2000, 20.0), (3000, 30.0)]))],
            Resolution::Raw,
        );
        let (layout, frame) = frame(&w, (0, 10_000));
        assert_eq!(frame.xs, [1.0, 2.0, 3.0]);
        assert_eq!(frame.columns[0][0], 1.0);
        assert_eq!(frame.columns[0][1], ABSENT);
        assert_eq!(frame.columns[1][..2], [ABSENT, 20.0]);
        assert_eq!((frame.points, frame.gaps), (4, 0));
        assert_eq!(layout.lines.len(), 2);
        assert!(layout.bands.is_empty() && layout.increments.is_none() && frame.y_range.is_none());
    }

    #[test]
    fn an_agent_that_stopped_leaves_a_gap() {
        // Every 5 s, then nothing for two minutes, then every 5 s again.
        let mut points: Vec<(i64, f64)> = (0..12).map(|i| (i * 5_000, 1.0)).collect();
        points.extend((0..12).map(|i| (55_000 + 120_000 + i * 5_000, 2.0)));
        let w = widget("x", vec![("a", "", raw(&points))], Resolution::Raw);
        let (_, f) = frame(&w, (0, 300_000));
        assert_eq!(f.gaps, 1);
        let gap_at = f.columns[0].iter().position(|v| v.is_nan()).unwrap_or(0);
        assert_eq!(f.xs[gap_at], (55_000.0 + 60_000.0) / 1000.0, "in the middle of the outage");
        assert_eq!(f.columns[0].iter().filter(|v| v.is_finite()).count(), 24);
        // A late point (twice the interval) is not an outage.
        let w =
            widget("x", vec![("a", "", raw(&[(0, 1.0), (5_000, 1.0), (10_000, 1.0), (20_000, 1.0)]))], Resolution::Raw);
        assert_eq!(frame(&w, (0, 30_000)).1.gaps, 0);
    }

    const MINUTE: i64 = 60_000;

    /// A 1-minute rollup series with a bucket at each of `minutes`, each holding `count` points.
    fn buckets(minutes: &[i64], count: Option<u64>) -> Series {
        let sample = |t: i64| Sample { ts: t * MINUTE, value: 5.0, band: Some((1.0, 9.0)), last: None, count };
        Series::from_samples(minutes.iter().map(|&t| sample(t)).collect())
    }

    fn rollup_gaps(series: Series) -> usize {
        frame(&widget("x", vec![("a", "", series)], Resolution::ONE_MINUTE), (0, 10 * MINUTE)).1.gaps
    }

    #[test]
    fn rollups_of_about_one_point_per_bucket_may_miss_one_bucket_but_not_two() {
        for count in [Some(1), None] {
            assert_eq!(rollup_gaps(buckets(&[0, 1, 2, 4, 5], count)), 0, "one missing, count {count:?}");
            assert_eq!(rollup_gaps(buckets(&[0, 1, 2, 5, 6], count)), 1, "two missing, count {count:?}");
            // Whole buckets apart: up to two is one missing, three is two missing.
            assert_eq!(gap_threshold_ms(&buckets(&[0, 1, 2], count), Some(MINUTE)), Some(150_000));
            assert_eq!(gap_threshold_ms(&buckets(&[0, 10, 20], count), Some(MINUTE)), Some(25 * MINUTE), "sparse");
            assert_eq!(gap_threshold_ms(&buckets(&[0], count), Some(MINUTE)), None);
        }
        // Mostly one point a bucket, the odd bucket with two (jitter): still one may be missing.
        let mut jittery = buckets(&[0, 2, 3, 4], Some(1)).samples().iter().copied().collect::<Vec<_>>();
        jittery[1].count = Some(2);
        assert_eq!(rollup_gaps(Series::from_samples(jittery)), 0);
    }

    #[test]
    fn rollups_of_several_points_per_bucket_break_at_any_missing_bucket() {
        // An agent every 10 s stops for two minutes from 2:30: only the bucket at 3:00 is empty.
        assert_eq!(rollup_gaps(buckets(&[0, 1, 2, 4, 5], Some(6))), 1, "one missing");
        assert_eq!(rollup_gaps(buckets(&[0, 1, 2, 5, 6], Some(6))), 1, "two missing");
        assert_eq!(rollup_gaps(buckets(&[0, 1, 2, 3, 4, 5], Some(6))), 0, "none missing");
        assert_eq!(gap_threshold_ms(&buckets(&[0, 1, 2], Some(6)), Some(MINUTE)), Some(90_000));
        // Two points a bucket (an agent every 30 s) is already dense.
        assert_eq!(rollup_gaps(buckets(&[0, 1, 2, 4, 5], Some(2))), 1);
        // 15-minute buckets of the week view: a missing one is a gap too.
        let quarter = 15 * MINUTE;
        let week = Series::from_samples(
            [0, 1, 2, 4]
                .iter()
                .map(|&i| Sample { ts: i * quarter, value: 1.0, band: None, last: None, count: Some(90) })
                .collect(),
        );
        assert_eq!(gap_threshold_ms(&week, Some(quarter)), Some(quarter * 3 / 2));
    }

    #[test]
    fn raw_points_keep_their_own_interval_rule() {
        // Points every 10 s: 25 s apart is not a gap, 30 s is; bucket counts play no part.
        assert_eq!(gap_threshold_ms(&raw(&[(0, 1.0), (10_000, 1.0), (20_000, 1.0)]), None), Some(25_000));
        let late = raw(&[(0, 1.0), (10_000, 1.0), (20_000, 1.0), (45_000, 1.0), (55_000, 1.0)]);
        assert_eq!(frame(&widget("x", vec![("a", "", late)], Resolution::Raw), (0, MINUTE)).1.gaps, 0);
        let stopped = raw(&[(0, 1.0), (10_000, 1.0), (20_000, 1.0), (50_000, 1.0), (60_000, 1.0)]);
        assert_eq!(frame(&widget("x", vec![("a", "", stopped)], Resolution::Raw), (0, MINUTE)).1.gaps, 1);
    }

    #[test]
    fn rollups_draw_a_min_max_band_around_the_average() {
        let samples = vec![
            Sample { ts: 0, value: 5.0, band: Some((1.0, 9.0)), last: Some(4.0), count: Some(60) },
            Sample { ts: 60_000, value: 6.0, band: Some((2.0, 120.0)), last: Some(7.0), count: Some(60) },
        ];
        let w = widget("cpu.usage_percent", vec![("a", "", Series::from_samples(samples))], Resolution::ONE_MINUTE);
        let (layout, f) = frame(&w, (0, 120_000));
        assert_eq!(layout.lines.len(), 3);
        assert!(layout.lines[1].band_edge && layout.lines[2].band_edge && !layout.lines[0].band_edge);
        assert_eq!(layout.bands, [Band { line: 1, upper: 2, lower: 3 }]);
        assert_eq!(f.columns[1], [9.0, 120.0]);
        assert_eq!(f.columns[2], [1.0, 2.0]);
        assert_eq!(f.y_range, Some((0.0, 120.0)), "percent widened to the band's top");
    }

    #[test]
    fn only_the_window_counts_but_lines_reach_its_edges() {
        let w = widget(
            "x",
            vec![("a", "", raw(&[(0, 1.0), (10_000, 2.0), (20_000, 3.0), (30_000, 4.0)]))],
            Resolution::Raw,
        );
        let (_, f) = frame(&w, (15_000, 25_000));
        assert_eq!(f.xs, [10.0, 20.0, 30.0]);
        assert_eq!(f.points, 1);
        assert_eq!(frame(&Widget::default(), (0, 1)).1, Frame::default());
    }

    #[test]
    fn an_agents_second_series_is_dashed_in_its_colour() {
        let w = widget(
            "disk.used_percent",
            vec![
                ("h", "mount=/", raw(&[(0, 1.0)])),
                ("h", "mount=/data", raw(&[(0, 1.0)])),
                ("k", "mount=/", raw(&[(0, 1.0)])),
            ],
            Resolution::Raw,
        );
        let layout = frame(&w, (0, 1)).0;
        assert_eq!(layout.lines[0].color, layout.lines[1].color);
        assert!(layout.lines[0].dash.is_empty() && !layout.lines[1].dash.is_empty() && layout.lines[2].dash.is_empty());
    }
}
