//! The dashboard's state, free of any browser API so it is unit-tested natively: the series
//! behind each widget, the live link's transport decisions, and the geometry of a chart.

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use microdash_core::api::{PointOut, TimestampIn};

/// How much history a live widget shows.
pub const WINDOW_MS: i64 = 15 * 60 * 1000;
/// Points kept per series; at one point a second this covers the window.
pub const MAX_POINTS_PER_SERIES: usize = 1_800;

/// Milliseconds of an RFC 3339 timestamp as the server writes them.
pub fn parse_millis(timestamp: &str) -> Option<i64> {
    TimestampIn::Rfc3339(timestamp.to_owned()).to_millis().ok()
}

/// One line of a widget: an agent and a tag set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesId {
    /// Agent id, empty when the metric has none.
    pub agent: String,
    /// `key=value` pairs, sorted, space-separated.
    pub tags: String,
}

impl SeriesId {
    fn of(point: &PointOut) -> SeriesId {
        let tags: Vec<String> = point.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        SeriesId { agent: point.agent_id.clone().unwrap_or_default(), tags: tags.join(" ") }
    }

    /// What the legend shows.
    pub fn label(&self) -> String {
        match (self.agent.is_empty(), self.tags.is_empty()) {
            (true, true) => "(no agent)".into(),
            (false, true) => self.agent.clone(),
            (true, false) => self.tags.clone(),
            (false, false) => format!("{} {}", self.agent, self.tags),
        }
    }
}

/// Time-ordered points of one series, bounded in count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    points: VecDeque<(i64, f64)>,
}

impl Series {
    /// Add a point, keeping time order; the oldest points go beyond the bound. Appending (the
    /// live case) is O(1); a late point is inserted in place; a point at an existing time
    /// replaces it (history and the live feed may overlap).
    pub fn push(&mut self, ts: i64, value: f64) {
        match self.points.back() {
            Some(&(last, _)) if ts > last => self.points.push_back((ts, value)),
            None => self.points.push_back((ts, value)),
            Some(_) => match self.points.binary_search_by_key(&ts, |p| p.0) {
                Ok(at) => self.points[at].1 = value,
                Err(at) => self.points.insert(at, (ts, value)),
            },
        }
        while self.points.len() > MAX_POINTS_PER_SERIES {
            self.points.pop_front();
        }
    }

    /// Drop points older than `cutoff_ms`.
    pub fn trim_before(&mut self, cutoff_ms: i64) {
        while self.points.front().is_some_and(|p| p.0 < cutoff_ms) {
            self.points.pop_front();
        }
    }

    /// The points, oldest first.
    pub fn points(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        self.points.iter().copied()
    }

    /// The latest point.
    pub fn last(&self) -> Option<(i64, f64)> {
        self.points.back().copied()
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

/// One metric's chart data: a series per agent and tag set. Shared with the chart component
/// behind an `Rc`; `version` changes whenever the data does, so unchanged charts are skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Widget {
    /// Metric name.
    pub metric: String,
    /// The lines.
    pub series: BTreeMap<SeriesId, Series>,
    /// Bumped on every change.
    pub version: u64,
}

impl Widget {
    /// Smallest and largest value shown.
    pub fn value_range(&self) -> Option<(f64, f64)> {
        let mut values = self.series.values().flat_map(|s| s.points().map(|p| p.1));
        let first = values.next()?;
        Some(values.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v))))
    }

    /// Time of the latest point of any series.
    pub fn latest_ms(&self) -> Option<i64> {
        self.series.values().filter_map(|s| s.last()).map(|p| p.0).max()
    }
}

/// Every widget of the tenant being watched.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Board {
    widgets: BTreeMap<String, Rc<Widget>>,
    version: u64,
}

impl Board {
    /// Add points (from history or the live feed); returns how many were taken.
    pub fn apply(&mut self, points: &[PointOut]) -> usize {
        let mut taken = 0;
        for point in points {
            let Some(ts) = parse_millis(&point.timestamp) else { continue };
            let widget = self
                .widgets
                .entry(point.metric_name.clone())
                .or_insert_with(|| Rc::new(Widget { metric: point.metric_name.clone(), ..Widget::default() }));
            let widget = Rc::make_mut(widget);
            widget.series.entry(SeriesId::of(point)).or_default().push(ts, point.value);
            widget.version = widget.version.wrapping_add(1);
            taken += 1;
        }
        if taken > 0 {
            self.version = self.version.wrapping_add(1);
        }
        taken
    }

    /// Make sure a widget exists for `metric`, even before it has points.
    pub fn ensure(&mut self, metric: &str) {
        if !self.widgets.contains_key(metric) {
            self.widgets.insert(metric.to_owned(), Rc::new(Widget { metric: metric.to_owned(), ..Widget::default() }));
            self.version = self.version.wrapping_add(1);
        }
    }

    /// Drop what fell out of the window ending at `now_ms`.
    pub fn trim(&mut self, now_ms: i64) {
        let cutoff = now_ms - WINDOW_MS;
        for widget in self.widgets.values_mut() {
            let stale = widget.series.values().any(|s| s.points().next().is_some_and(|p| p.0 < cutoff));
            if stale {
                let widget = Rc::make_mut(widget);
                widget.series.values_mut().for_each(|s| s.trim_before(cutoff));
                widget.version = widget.version.wrapping_add(1);
            }
        }
    }

    /// Widgets in display order: CPU, memory, disk first (the host view), then the rest by
    /// name.
    pub fn widgets(&self) -> Vec<Rc<Widget>> {
        let mut widgets: Vec<Rc<Widget>> = self.widgets.values().cloned().collect();
        widgets.sort_by_key(|w| (display_rank(&w.metric), w.metric.clone()));
        widgets
    }

    /// One widget.
    pub fn widget(&self, metric: &str) -> Option<Rc<Widget>> {
        self.widgets.get(metric).cloned()
    }

    /// Bumped on every change.
    pub fn version(&self) -> u64 {
        self.version
    }
}

/// Host metrics first, in the order an operator reads them.
fn display_rank(metric: &str) -> u8 {
    ["cpu", "mem", "memory", "disk"]
        .iter()
        .position(|prefix| metric == *prefix || metric.starts_with(&format!("{prefix}.")))
        .map_or(u8::MAX, |p| p as u8)
}

/// How the live link currently gets its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Server-Sent Events.
    Stream,
    /// Polling the cursor endpoint.
    Polling,
}

/// The live link's decisions: when to give up on the stream, when to try it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Current transport.
    pub transport: Transport,
    /// Whether data is flowing.
    pub connected: bool,
    /// Last cursor (event id) seen, to resume from.
    pub cursor: Option<String>,
    failures: u32,
    polling_since_ms: i64,
}

/// Stream errors in a row (without a successful open between) before switching to polling.
pub const MAX_STREAM_FAILURES: u32 = 3;
/// How long to poll before trying the stream again.
pub const STREAM_RETRY_MS: i64 = 30_000;

impl Link {
    /// A link that starts on the stream, or on polling when the browser has no EventSource
    /// or the user asked for it.
    pub fn new(stream_available: bool, now_ms: i64) -> Link {
        let transport = if stream_available { Transport::Stream } else { Transport::Polling };
        Link { transport, connected: false, cursor: None, failures: 0, polling_since_ms: now_ms }
    }

    /// The stream opened (its `ready` or `reset` event arrived).
    pub fn stream_opened(&mut self) {
        self.transport = Transport::Stream;
        self.connected = true;
        self.failures = 0;
    }

    /// The stream failed; returns `true` when it is time to fall back to polling.
    pub fn stream_failed(&mut self, now_ms: i64) -> bool {
        self.connected = false;
        self.failures += 1;
        if self.transport == Transport::Stream && self.failures >= MAX_STREAM_FAILURES {
            self.transport = Transport::Polling;
            self.polling_since_ms = now_ms;
            return true;
        }
        false
    }

    /// Stream failures in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Give up on the stream at once (it cannot even be created here).
    pub fn fall_back(&mut self, now_ms: i64) {
        self.transport = Transport::Polling;
        self.connected = false;
        self.polling_since_ms = now_ms;
    }

    /// A poll answered (or failed).
    pub fn polled(&mut self, ok: bool) {
        self.connected = ok;
    }

    /// Whether polling has gone on long enough to try the stream again.
    pub fn should_retry_stream(&self, now_ms: i64, stream_available: bool) -> bool {
        stream_available && self.transport == Transport::Polling && now_ms - self.polling_since_ms >= STREAM_RETRY_MS
    }

    /// Start trying the stream again.
    pub fn retry_stream(&mut self) {
        self.transport = Transport::Stream;
        self.connected = false;
        self.failures = 0;
    }

    /// What the status badge says.
    pub fn describe(&self) -> &'static str {
        match (self.transport, self.connected) {
            (Transport::Stream, true) => "live",
            (Transport::Polling, true) => "live (polling)",
            (Transport::Stream, false) => "connecting",
            (Transport::Polling, false) => "reconnecting (polling)",
        }
    }
}

/// A value range with some headroom, so lines do not touch the chart's edges; a flat line
/// gets a range around it.
pub fn padded_range(range: Option<(f64, f64)>) -> (f64, f64) {
    match range {
        None => (0.0, 1.0),
        Some((lo, hi)) if (hi - lo).abs() < f64::EPSILON => {
            let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
            (lo - pad, hi + pad)
        }
        Some((lo, hi)) => {
            let pad = (hi - lo) * 0.08;
            let lo = if lo >= 0.0 && lo - pad < 0.0 { 0.0 } else { lo - pad };
            (lo, hi + pad)
        }
    }
}

/// SVG path data of `points` in a `width` x `height` box, time mapped from `x_range` and
/// values from `y_range` (upwards). Points outside the time range are skipped.
pub fn line_path(
    points: impl Iterator<Item = (i64, f64)>,
    x_range: (i64, i64),
    y_range: (f64, f64),
    width: f64,
    height: f64,
) -> String {
    use std::fmt::Write;
    let span_x = (x_range.1 - x_range.0).max(1) as f64;
    let span_y = if y_range.1 > y_range.0 { y_range.1 - y_range.0 } else { 1.0 };
    let mut path = String::new();
    for (ts, value) in points.filter(|p| p.0 >= x_range.0 && p.0 <= x_range.1) {
        let x = (ts - x_range.0) as f64 / span_x * width;
        let y = height - (value - y_range.0) / span_y * height;
        let command = if path.is_empty() { 'M' } else { 'L' };
        // One decimal is sub-pixel; shorter strings mean less DOM work per update.
        let _ = write!(path, "{command}{x:.1} {y:.1}");
    }
    path
}

/// A value for a label: up to four significant digits, thousands as k/M/G.
pub fn format_value(value: f64) -> String {
    let abs = value.abs();
    let (scaled, suffix) = if abs >= 1e9 {
        (value / 1e9, "G")
    } else if abs >= 1e6 {
        (value / 1e6, "M")
    } else if abs >= 1e4 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    let text = if scaled.fract() == 0.0 && scaled.abs() < 1e4 {
        format!("{scaled:.0}")
    } else if scaled.abs() >= 100.0 {
        format!("{scaled:.1}")
    } else {
        format!("{scaled:.2}")
    };
    format!("{text}{suffix}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn point(metric: &str, agent: Option<&str>, ts: &str, value: f64) -> PointOut {
        PointOut {
            metric_name: metric.into(),
            agent_id: agent.map(Into::into),
            tags: BTreeMap::new(),
            timestamp: ts.into(),
            value,
        }
    }

    #[test]
    fn series_stay_ordered_bounded_and_deduplicated() {
        let mut s = Series::default();
        s.push(10, 1.0);
        s.push(30, 3.0);
        s.push(20, 2.0);
        s.push(30, 3.5);
        assert_eq!(s.points().collect::<Vec<_>>(), [(10, 1.0), (20, 2.0), (30, 3.5)]);
        for ts in 0..(MAX_POINTS_PER_SERIES as i64 + 10) {
            s.push(100 + ts, 0.0);
        }
        assert_eq!(s.len(), MAX_POINTS_PER_SERIES);
        s.trim_before(100 + MAX_POINTS_PER_SERIES as i64);
        assert_eq!(s.len(), 10);
    }

    #[test]
    fn board_groups_points_by_metric_and_series_and_orders_host_metrics_first() {
        let mut board = Board::default();
        let taken = board.apply(&[
            point("queue.depth", None, "2026-11-28T12:00:00.000Z", 5.0),
            point("disk.used_percent", Some("web-1"), "2026-11-28T12:00:00.000Z", 40.0),
            point("cpu.usage_percent", Some("web-1"), "2026-11-28T12:00:00.000Z", 12.5),
            point("cpu.usage_percent", Some("db-1"), "2026-11-28T12:00:01.000Z", 80.0),
            point("mem.used_percent", Some("web-1"), "not a time", 1.0),
        ]);
        assert_eq!(taken, 4, "a point with an unreadable time is skipped");
        let names: Vec<String> = board.widgets().iter().map(|w| w.metric.clone()).collect();
        assert_eq!(names, ["cpu.usage_percent", "disk.used_percent", "queue.depth"]);
        let cpu = board.widget("cpu.usage_percent").unwrap();
        let labels: Vec<String> = cpu.series.keys().map(SeriesId::label).collect();
        assert_eq!(labels, ["db-1", "web-1"]);
        assert_eq!(cpu.value_range(), Some((12.5, 80.0)));
        assert_eq!(cpu.latest_ms(), parse_millis("2026-11-28T12:00:01.000Z"));
    }

    #[test]
    fn only_changed_widgets_get_a_new_version() {
        let mut board = Board::default();
        board.apply(&[point("a", None, "2026-11-28T12:00:00Z", 1.0), point("b", None, "2026-11-28T12:00:00Z", 1.0)]);
        let (a, b) = (board.widget("a").unwrap().version, board.widget("b").unwrap().version);
        let before = board.version();
        board.apply(&[point("a", None, "2026-11-28T12:00:01Z", 2.0)]);
        assert_ne!(board.widget("a").unwrap().version, a);
        assert_eq!(board.widget("b").unwrap().version, b);
        assert_ne!(board.version(), before);
        assert_eq!(board.apply(&[]), 0);
    }

    #[test]
    fn trimming_drops_points_outside_the_window() {
        let mut board = Board::default();
        board.apply(&[point("a", None, "2026-11-28T12:00:00Z", 1.0), point("a", None, "2026-11-28T12:20:00Z", 2.0)]);
        board.trim(parse_millis("2026-11-28T12:20:00Z").unwrap());
        let widget = board.widget("a").unwrap();
        assert_eq!(widget.series.values().next().unwrap().len(), 1);
    }

    #[test]
    fn tags_make_separate_series() {
        let mut board = Board::default();
        let mut root = point("disk.used_percent", Some("h"), "2026-11-28T12:00:00Z", 1.0);
        root.tags.insert("mount".into(), "/".into());
        let mut data = root.clone();
        data.tags.insert("mount".into(), "/data".into());
        board.apply(&[root, data]);
        let labels: Vec<String> =
            board.widget("disk.used_percent").unwrap().series.keys().map(SeriesId::label).collect();
        assert_eq!(labels, ["h mount=/", "h mount=/data"]);
    }

    #[test]
    fn the_link_falls_back_to_polling_and_returns_to_the_stream() {
        let mut link = Link::new(true, 0);
        assert_eq!(link.describe(), "connecting");
        link.stream_opened();
        assert_eq!(link.describe(), "live");
        assert!(!link.stream_failed(1));
        link.stream_opened();
        // Three failures without an open in between: give up on the stream.
        assert!(!link.stream_failed(2));
        assert!(!link.stream_failed(3));
        assert!(link.stream_failed(4));
        assert_eq!(link.transport, Transport::Polling);
        link.polled(true);
        assert_eq!(link.describe(), "live (polling)");
        assert!(!link.should_retry_stream(4 + STREAM_RETRY_MS - 1, true));
        assert!(link.should_retry_stream(4 + STREAM_RETRY_MS, true));
        assert!(!link.should_retry_stream(4 + STREAM_RETRY_MS, false), "never without EventSource");
        link.retry_stream();
        assert_eq!((link.transport, link.connected), (Transport::Stream, false));

        let without = Link::new(false, 0);
        assert_eq!(without.transport, Transport::Polling);

        let mut broken = Link::new(true, 0);
        broken.fall_back(5);
        assert_eq!(broken.transport, Transport::Polling);
        assert!(broken.should_retry_stream(5 + STREAM_RETRY_MS, true));
    }

    #[test]
    fn paths_map_time_right_and_values_up() {
        let path =
            line_path([(0, 0.0), (50, 5.0), (100, 10.0), (200, 1.0)].into_iter(), (0, 100), (0.0, 10.0), 200.0, 100.0);
        assert_eq!(path, "M0.0 100.0L100.0 50.0L200.0 0.0");
        assert_eq!(line_path(std::iter::empty(), (0, 1), (0.0, 1.0), 1.0, 1.0), "");
    }

    #[test]
    fn ranges_get_headroom_and_values_read_well() {
        assert_eq!(padded_range(None), (0.0, 1.0));
        assert_eq!(padded_range(Some((5.0, 5.0))), (4.5, 5.5));
        assert_eq!(padded_range(Some((0.0, 0.0))), (-1.0, 1.0));
        let (lo, hi) = padded_range(Some((10.0, 110.0)));
        assert!(lo < 10.0 && hi > 110.0);
        assert_eq!(padded_range(Some((1.0, 101.0))).0, 0.0, "non-negative data keeps a zero floor");
        assert_eq!(format_value(42.5), "42.50");
        assert_eq!(format_value(1500.0), "1500");
        assert_eq!(format_value(123_456.0), "123.5k");
        assert_eq!(format_value(2.5e9), "2.50G");
        assert_eq!(format_value(-3.0), "-3");
    }
}
