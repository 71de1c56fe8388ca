//! The dashboard's state, free of any browser API so it is unit-tested natively: the series
//! behind each widget, the live link's transport decisions, and what a chart is given to draw.
//!
//! - [`range`]: the time range of a page (live, presets, custom, zoom), its URL form and the
//!   query it becomes.
//! - [`units`]: units told from metric names, and how values and ticks read in them.
//! - [`plot`]: a widget's data as the chart library takes it: aligned columns, gaps, bands,
//!   stable colours.
//! - [`alerts`]: the alerting screens' forms, errors, previews and inbox order, and what a
//!   chart overlays (alert transitions, rule thresholds).
//! - [`fleet`]: the overview's hosts, their latest values and status, searched and sorted.
//! - [`layout`]: how a tenant arranged its widgets (hidden, pinned, order, size, kind).
//! - [`snippets`]: ready-to-run ways to send a first metric.
//! - [`widget`]: what a stat or gauge widget draws (its value, a sparkline, an arc).

pub mod alerts;
pub mod fleet;
pub mod layout;
pub mod plot;
pub mod range;
pub mod snippets;
pub mod units;
pub mod widget;

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use microdash_core::api::{PointOut, Resolution, TimestampIn};
use range::TimeRange;

/// How much history a live widget shows.
pub const WINDOW_MS: i64 = 15 * 60 * 1000;
/// Points kept per series on the live feed; at one point a second this covers the window.
pub const MAX_POINTS_PER_SERIES: usize = 1_800;
/// Live points held for a widget still showing another range, until its load arrives.
pub const MAX_PENDING_POINTS: usize = 20_000;

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
    /// The series of `agent` (none: empty) with `tags`.
    pub fn new(agent: Option<&str>, tags: &BTreeMap<String, String>) -> SeriesId {
        let tags: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        SeriesId { agent: agent.unwrap_or_default().to_owned(), tags: tags.join(" ") }
    }

    fn of(point: &PointOut) -> SeriesId {
        SeriesId::new(point.agent_id.as_deref(), &point.tags)
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

/// One point of a series: a raw point, or a rollup bucket (its average as the value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Unix milliseconds; a bucket's start.
    pub ts: i64,
    /// The value, or the bucket's average.
    pub value: f64,
    /// Rollups: the bucket's `(min, max)`, drawn as a band around the average.
    pub band: Option<(f64, f64)>,
    /// Rollups: the value of the bucket's latest point, what the legend shows as "last".
    pub last: Option<f64>,
    /// Rollups: how many points the bucket holds; `None` for a raw point. It tells whether
    /// an agent reports more often than the bucket width, so that a missing bucket means it
    /// stopped (see [`plot::gap_threshold_ms`]).
    pub count: Option<u64>,
}

impl Sample {
    fn of(point: &PointOut, ts: i64) -> Sample {
        let band = match (point.min, point.max) {
            (Some(min), Some(max)) => Some((min, max)),
            _ => None,
        };
        Sample { ts, value: point.value, band, last: point.last, count: point.count }
    }
}

/// Time-ordered samples of one series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    samples: VecDeque<Sample>,
}

impl Series {
    /// A series loaded from history, in any order; of samples at the same time the last
    /// one stays. Not bounded: the query bounded it.
    pub fn from_samples(mut samples: Vec<Sample>) -> Series {
        samples.sort_by_key(|s| s.ts);
        let mut out: VecDeque<Sample> = VecDeque::with_capacity(samples.len());
        for sample in samples {
            match out.back_mut() {
                Some(last) if last.ts == sample.ts => *last = sample,
                _ => out.push_back(sample),
            }
        }
        Series { samples: out }
    }

    /// Add a live point, keeping time order; the oldest points go beyond
    /// [`MAX_POINTS_PER_SERIES`]. Appending (the live case) is O(1); a late point is inserted
    /// in place; a point at an existing time replaces it (history and the live feed may
    /// overlap).
    pub fn push(&mut self, ts: i64, value: f64) {
        let sample = Sample { ts, value, band: None, last: None, count: None };
        match self.samples.back() {
            Some(last) if ts > last.ts => self.samples.push_back(sample),
            None => self.samples.push_back(sample),
            Some(_) => match self.samples.binary_search_by_key(&ts, |s| s.ts) {
                Ok(at) => self.samples[at] = sample,
                Err(at) => self.samples.insert(at, sample),
            },
        }
        while self.samples.len() > MAX_POINTS_PER_SERIES {
            self.samples.pop_front();
        }
    }

    /// Drop points older than `cutoff_ms`.
    pub fn trim_before(&mut self, cutoff_ms: i64) {
        while self.samples.front().is_some_and(|s| s.ts < cutoff_ms) {
            self.samples.pop_front();
        }
    }

    /// `(time, value)` of each point, oldest first.
    pub fn points(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        self.samples.iter().map(|s| (s.ts, s.value))
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> &VecDeque<Sample> {
        &self.samples
    }

    /// The latest point as `(time, value)`; for a rollup bucket its last value rather than
    /// its average, since that is what "the latest value" means to a reader.
    pub fn last(&self) -> Option<(i64, f64)> {
        self.samples.back().map(|s| (s.ts, s.last.unwrap_or(s.value)))
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
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
    /// Resolution of the data shown (the answer's, for history; raw on the live feed).
    pub resolution: Resolution,
    /// Bumped on every change.
    pub version: u64,
    /// The view (see [`Board::begin_view`]) the data belongs to.
    view: u64,
    /// That view's range and when it was asked for: the time axis goes with the data, so a
    /// chart keeps its old axis, not an empty new one, until the new data arrives.
    range: TimeRange,
    anchor_ms: i64,
    /// Live points that came while the widget still showed an older view.
    pending: Vec<(SeriesId, i64, f64)>,
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

    /// The time axis for the data shown: `(start, end)` in Unix milliseconds. Live data
    /// follows the clock; other ranges end where they ended when asked for.
    pub fn window(&self, now_ms: i64) -> (i64, i64) {
        self.range.window(if self.range.is_live() { now_ms } else { self.anchor_ms })
    }

    /// The range of the data shown.
    pub fn range(&self) -> TimeRange {
        self.range
    }

    fn bump(&mut self) {
        self.version = self.version.wrapping_add(1);
    }

    /// Swap in a view's data, then the live points that arrived meanwhile.
    fn replace(&mut self, view: &View, resolution: Resolution, series: BTreeMap<SeriesId, Series>) {
        self.series = series;
        self.resolution = resolution;
        (self.view, self.range, self.anchor_ms) = (view.id, view.range, view.anchor_ms);
        for (id, ts, value) in std::mem::take(&mut self.pending) {
            self.series.entry(id).or_default().push(ts, value);
        }
        self.bump();
    }
}

/// Group points by series, skipping points whose time does not read.
fn group(points: &[PointOut]) -> (BTreeMap<SeriesId, Vec<Sample>>, usize) {
    let mut out: BTreeMap<SeriesId, Vec<Sample>> = BTreeMap::new();
    let mut taken = 0;
    for point in points {
        let Some(ts) = parse_millis(&point.timestamp) else { continue };
        out.entry(SeriesId::of(point)).or_default().push(Sample::of(point, ts));
        taken += 1;
    }
    (out, taken)
}

/// Every widget of the tenant being watched.
///
/// Changing what the page shows (another range, a zoom, back to live) starts a new *view*:
/// the widgets keep showing the old data until their load for the new view arrives, and
/// then swap it in at once, so switching never blanks the page. Answers for a view that is
/// no longer current are ignored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Board {
    widgets: BTreeMap<String, Rc<Widget>>,
    version: u64,
    view: View,
}

/// What the board is loading or showing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct View {
    /// Counted up by the page; loads carry it.
    pub id: u64,
    /// The range asked for.
    pub range: TimeRange,
    /// When it was asked for (Unix milliseconds): where a preset's axis ends.
    pub anchor_ms: i64,
}

impl Board {
    /// Start `view`, whose id was not used before on this board, to hand back with its
    /// loads.
    pub fn begin_view(&mut self, view: View) {
        self.view = view;
    }

    /// The current view.
    pub fn view(&self) -> View {
        self.view
    }

    /// A metric's load for `view`: replaces what the widget showed for an earlier view, adds
    /// to what it holds for this one (live points that came first). Returns whether it was
    /// taken (the view is still current).
    pub fn load(&mut self, view: u64, metric: &str, resolution: Resolution, points: &[PointOut]) -> bool {
        if view != self.view.id {
            return false;
        }
        let current = self.view;
        let (grouped, _) = group(points);
        let widget = Rc::make_mut(self.entry(metric));
        if widget.view == view {
            for (id, samples) in grouped {
                let series = widget.series.entry(id).or_default();
                let mut all: Vec<Sample> = series.samples.drain(..).collect();
                all.extend(samples);
                *series = Series::from_samples(all);
            }
            widget.resolution = resolution;
            widget.bump();
        } else {
            let series = grouped.into_iter().map(|(id, samples)| (id, Series::from_samples(samples))).collect();
            widget.replace(&current, resolution, series);
        }
        self.version = self.version.wrapping_add(1);
        true
    }

    /// Every load of `view` is in: `metrics` get a (possibly empty) chart, widgets without a
    /// load in this view are emptied, and those of metrics no longer listed go. Widgets whose
    /// load `failed` keep what they showed (the page says why), rather than going blank.
    pub fn finish(&mut self, view: u64, metrics: &[String], failed: &[String]) {
        if view != self.view.id {
            return;
        }
        for metric in metrics {
            self.entry(metric);
        }
        self.widgets.retain(|name, w| w.view == view || metrics.contains(name));
        let current = self.view;
        for (_, widget) in self.widgets.iter_mut().filter(|(name, w)| w.view != view && !failed.contains(name)) {
            Rc::make_mut(widget).replace(&current, Resolution::Raw, BTreeMap::new());
        }
        self.version = self.version.wrapping_add(1);
    }

    /// Add live points; returns how many were taken. A widget still showing an older view
    /// holds them until its load arrives (bounded: the oldest go first).
    pub fn apply(&mut self, points: &[PointOut]) -> usize {
        let mut taken = 0;
        let view = self.view.id;
        for point in points {
            let Some(ts) = parse_millis(&point.timestamp) else { continue };
            let widget = Rc::make_mut(self.entry(&point.metric_name));
            if widget.view == view {
                widget.series.entry(SeriesId::of(point)).or_default().push(ts, point.value);
                widget.bump();
            } else {
                if widget.pending.len() >= MAX_PENDING_POINTS {
                    widget.pending.remove(0);
                }
                widget.pending.push((SeriesId::of(point), ts, point.value));
            }
            taken += 1;
        }
        if taken > 0 {
            self.version = self.version.wrapping_add(1);
        }
        taken
    }

    fn entry(&mut self, metric: &str) -> &mut Rc<Widget> {
        if !self.widgets.contains_key(metric) {
            self.version = self.version.wrapping_add(1);
        }
        let View { id: view, range, anchor_ms } = self.view;
        self.widgets.entry(metric.to_owned()).or_insert_with(|| {
            Rc::new(Widget { metric: metric.to_owned(), view, range, anchor_ms, ..Widget::default() })
        })
    }

    /// Make sure a widget exists for `metric`, even before it has points.
    pub fn ensure(&mut self, metric: &str) {
        self.entry(metric);
    }

    /// Drop what fell out of the live window ending at `now_ms`, from the widgets showing
    /// live data (the others keep their range's data).
    pub fn trim(&mut self, now_ms: i64) {
        let cutoff = now_ms - WINDOW_MS;
        for widget in self.widgets.values_mut().filter(|w| w.range.is_live()) {
            let stale = widget.series.values().any(|s| s.points().next().is_some_and(|p| p.0 < cutoff));
            if stale {
                let widget = Rc::make_mut(widget);
                widget.series.values_mut().for_each(|s| s.trim_before(cutoff));
                widget.bump();
            }
        }
    }

    /// Widgets in display order: CPU, memory, disk first (the host view), then the rest by
    /// name.
    pub fn widgets(&self) -> Vec<Rc<Widget>> {
        let mut widgets: Vec<Rc<Widget>> = self.widgets.values().cloned().collect();
        widgets.sort_by_key(|w| display_key(&w.metric));
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

    /// Time of the latest point on the board.
    pub fn latest_ms(&self) -> Option<i64> {
        self.widgets.values().filter_map(|w| w.latest_ms()).max()
    }
}

/// Where a metric's chart goes on the page (see [`Board::widgets`]); loads go out in this order,
/// so the first charts on screen are the first asked for.
pub fn display_key(metric: &str) -> (u8, String) {
    (display_rank(metric), metric.to_owned())
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

/// Data counts as arriving while the newest of it is younger than this many reporting
/// intervals.
pub const STALE_INTERVALS: i64 = 3;
/// ...and never sooner than this: an agent reporting every second still gets some slack
/// for a slow batch.
pub const MIN_STALE_MS: i64 = 10_000;
/// Reporting interval assumed when no agent announced one.
pub const DEFAULT_INTERVAL_MS: i64 = 10_000;

/// How long without data before the badge stops saying "live": [`STALE_INTERVALS`] of the
/// slowest agent's announced interval (the default for agents that announced none).
pub fn stale_after_ms(intervals_s: impl Iterator<Item = Option<f64>>) -> i64 {
    let slowest = intervals_s.map(|i| i.map_or(DEFAULT_INTERVAL_MS, |s| (s * 1000.0) as i64)).max();
    (slowest.unwrap_or(DEFAULT_INTERVAL_MS) * STALE_INTERVALS).max(MIN_STALE_MS)
}

/// What the page is doing, for the badge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageMode {
    /// Following the live link.
    Live,
    /// Live view, but the user paused updates.
    Paused,
    /// Showing a past range; no link runs.
    History,
}

/// What the live badge shows: whether data is arriving, not only whether the link is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Badge {
    /// The words.
    pub text: String,
    /// `stream`, `polling` or `none`.
    pub transport: &'static str,
    /// The link is open.
    pub connected: bool,
    /// Data arrived within the staleness limit.
    pub receiving: bool,
}

/// The badge for a page in `mode` with `link`, whose latest data (the newest point shown, or
/// the last live frame, whichever is later) is `last_data_ms`.
pub fn badge(
    mode: PageMode,
    link: Option<&Link>,
    last_data_ms: Option<i64>,
    now_ms: i64,
    stale_after_ms: i64,
) -> Badge {
    let idle = |text: &str| Badge { text: text.to_owned(), transport: "none", connected: false, receiving: false };
    let link = match (mode, link) {
        (PageMode::History, _) => return idle("history"),
        (PageMode::Paused, _) => return idle("paused"),
        (PageMode::Live, None) => return idle("connecting"),
        (PageMode::Live, Some(link)) => link,
    };
    let transport = if link.transport == Transport::Stream { "stream" } else { "polling" };
    let suffix = if link.transport == Transport::Polling { " (polling)" } else { "" };
    if !link.connected {
        return Badge { text: link.describe().to_owned(), transport, connected: false, receiving: false };
    }
    let age = last_data_ms.map(|t| (now_ms - t).max(0));
    let receiving = age.is_some_and(|a| a <= stale_after_ms);
    let text = match age {
        _ if receiving => format!("live{suffix}"),
        Some(age) => format!("connected, no data for {}{suffix}", format_age(age)),
        None => format!("connected, waiting for data{suffix}"),
    };
    Badge { text, transport, connected: true, receiving }
}

/// An age in its largest whole unit: `12s`, `3m`, `5h`, `2d`.
pub fn format_age(ms: i64) -> String {
    let seconds = ms.max(0) / 1000;
    match seconds {
        0..=59 => format!("{seconds}s"),
        60..=3599 => format!("{}m", seconds / 60),
        3600..=86_399 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
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
            ..PointOut::default()
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
    fn plain_values_read_well() {
        assert_eq!(format_value(42.5), "42.50");
        assert_eq!(format_value(1500.0), "1500");
        assert_eq!(format_value(123_456.0), "123.5k");
        assert_eq!(format_value(2.5e9), "2.50G");
        assert_eq!(format_value(-3.0), "-3");
    }

    fn bucket(metric: &str, agent: &str, ts: &str, avg: f64, min: f64, max: f64, last: f64) -> PointOut {
        PointOut {
            min: Some(min),
            max: Some(max),
            count: Some(60),
            last: Some(last),
            ..point(metric, Some(agent), ts, avg)
        }
    }

    #[test]
    fn a_new_view_keeps_the_old_data_until_its_own_arrives() {
        let mut board = Board::default();
        let live = 1;
        board.begin_view(View { id: live, ..View::default() });
        board.load(live, "cpu", Resolution::Raw, &[point("cpu", Some("a"), "2026-11-28T12:00:00Z", 1.0)]);
        board.load(live, "mem", Resolution::Raw, &[point("mem", Some("a"), "2026-11-28T12:00:00Z", 1.0)]);
        board.finish(live, &["cpu".into(), "mem".into()], &[]);
        let day = 2;
        let anchor = parse_millis("2026-11-28T12:00:30Z").unwrap();
        board.begin_view(View { id: day, range: TimeRange::Last(range::Preset::Day), anchor_ms: anchor });
        // Nothing blanks while the day loads: the old data, on its old (live) axis.
        assert_eq!(board.widget("cpu").unwrap().series.values().next().unwrap().len(), 1);
        assert_eq!(board.widget("cpu").unwrap().window(anchor + 5_000), (anchor + 5_000 - WINDOW_MS, anchor + 5_000));
        assert!(board.load(
            day,
            "cpu",
            Resolution::ONE_MINUTE,
            &[
                bucket("cpu", "a", "2026-11-28T10:00:00Z", 5.0, 1.0, 9.0, 4.0),
                bucket("cpu", "a", "2026-11-28T10:01:00Z", 6.0, 2.0, 8.0, 7.0),
            ]
        ));
        let cpu = board.widget("cpu").unwrap();
        assert_eq!(cpu.resolution, Resolution::ONE_MINUTE);
        assert_eq!(cpu.window(anchor + 60_000), (anchor - 86_400_000, anchor), "the day's axis, fixed at its load");
        board.trim(anchor + 86_400_000);
        assert_eq!(board.widget("cpu").unwrap().series.values().next().unwrap().len(), 2, "history is not trimmed");
        let series = cpu.series.values().next().unwrap();
        assert_eq!(series.samples()[0].band, Some((1.0, 9.0)));
        assert_eq!(series.samples()[0].count, Some(60), "a bucket's count, which decides its gaps");
        assert_eq!(series.last(), Some((parse_millis("2026-11-28T10:01:00Z").unwrap(), 7.0)), "a bucket's last value");
        // A late answer for the live view is dropped.
        assert!(!board.load(live, "cpu", Resolution::Raw, &[]));
        assert_eq!(board.widget("cpu").unwrap().resolution, Resolution::ONE_MINUTE);
        // "mem" had no load for the day: emptied at the end, not before; a widget of a
        // metric no longer listed goes.
        board.ensure("gone");
        assert_eq!(board.widget("mem").unwrap().series.len(), 1);
        board.load(day, "disk", Resolution::Raw, &[point("disk", Some("a"), "2026-11-28T11:00:00Z", 1.0)]);
        let week = 3;
        board.begin_view(View { id: week, range: TimeRange::Last(range::Preset::Week), anchor_ms: anchor });
        board.finish(day, &["cpu".into(), "mem".into()], &[]);
        assert!(board.widget("gone").is_some(), "a finish for an old view changes nothing");
        board.begin_view(View { id: 4, range: TimeRange::Last(range::Preset::Day), anchor_ms: anchor });
        board.finish(4, &["cpu".into(), "mem".into(), "disk".into()], &["disk".into()]);
        assert!(board.widget("mem").unwrap().series.is_empty());
        assert_eq!(board.widget("disk").unwrap().series.len(), 1, "a failed load keeps the old data");
        assert!(board.widget("gone").is_none(), "a metric no longer listed goes");
    }

    #[test]
    fn live_points_wait_for_their_widgets_load_and_then_join_it() {
        let mut board = Board::default();
        let day = 3;
        board.begin_view(View { id: day, ..View::default() });
        board.load(
            day,
            "cpu",
            Resolution::ONE_MINUTE,
            &[bucket("cpu", "a", "2026-11-28T10:00:00Z", 5.0, 1.0, 9.0, 4.0)],
        );
        let live = 4;
        board.begin_view(View { id: live, ..View::default() });
        board.apply(&[point("cpu", Some("a"), "2026-11-28T12:00:05Z", 3.0)]);
        let cpu = board.widget("cpu").unwrap();
        assert_eq!(cpu.resolution, Resolution::ONE_MINUTE, "still the day's data");
        assert_eq!(cpu.series.values().next().unwrap().len(), 1);
        board.load(live, "cpu", Resolution::Raw, &[point("cpu", Some("a"), "2026-11-28T12:00:00Z", 2.0)]);
        let points: Vec<f64> =
            board.widget("cpu").unwrap().series.values().next().unwrap().points().map(|p| p.1).collect();
        assert_eq!(points, [2.0, 3.0]);
        // A metric first seen live, before its load: the load adds to it.
        board.apply(&[point("new", Some("a"), "2026-11-28T12:00:09Z", 9.0)]);
        board.load(live, "new", Resolution::Raw, &[point("new", Some("a"), "2026-11-28T12:00:01Z", 1.0)]);
        assert_eq!(board.widget("new").unwrap().series.values().next().unwrap().len(), 2);
    }

    #[test]
    fn the_badge_says_whether_data_arrives() {
        let stale = stale_after_ms([Some(1.0), None].into_iter());
        assert_eq!(stale, 30_000, "three default intervals beat three seconds");
        assert_eq!(stale_after_ms([Some(60.0)].into_iter()), 180_000);
        assert_eq!(stale_after_ms(std::iter::empty()), 30_000);
        let mut link = Link::new(true, 0);
        let check = |link: Option<&Link>, last: Option<i64>, text: &str, receiving: bool| {
            let b = badge(PageMode::Live, link, last, 100_000, 30_000);
            assert_eq!((b.text.as_str(), b.receiving), (text, receiving));
        };
        check(None, None, "connecting", false);
        check(Some(&link), Some(99_000), "connecting", false);
        link.stream_opened();
        check(Some(&link), None, "connected, waiting for data", false);
        check(Some(&link), Some(90_000), "live", true);
        check(Some(&link), Some(100_000 - 150_000), "connected, no data for 2m", false);
        link.fall_back(0);
        link.polled(true);
        check(Some(&link), Some(90_000), "live (polling)", true);
        check(Some(&link), Some(0), "connected, no data for 1m (polling)", false);
        assert_eq!(badge(PageMode::History, Some(&link), None, 0, 1).text, "history");
        assert_eq!(badge(PageMode::Paused, Some(&link), None, 0, 1).transport, "none");
        assert_eq!(format_age(59_999), "59s");
        assert_eq!(format_age(3 * 86_400_000), "3d");
    }
}
