//! The time range a tenant page shows, how it reads and writes in the URL, and what to ask the
//! server for it.

use microdash_core::api::{MetricsQuery, Resolution, ResolutionRequest, TimestampIn};
use microdash_core::layout::WidgetSize;
use microdash_core::metric::format_millis;

use super::WINDOW_MS;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Spans up to this long are fetched raw; longer ones from rollups (`resolution=auto`), whose
/// buckets are at least a minute wide.
pub const RAW_SPAN_MS: i64 = HOUR_MS;
/// The narrowest span a zoom goes to: below it a chart shows a handful of points at most.
pub const MIN_ZOOM_MS: i64 = 10_000;
/// Most buckets per series for rollup queries up to a day: the server's default, and what
/// keeps a day at one-minute resolution (1,440 buckets).
pub const MAX_POINTS: u32 = 1_500;
/// ...and beyond a day at most this many: about a bucket per pixel of a chart
/// ([`chart_width_px`], as Grafana's `maxDataPoints` is a panel's width), so a week is read at
/// 30 minutes for a small widget of the usual grid (337 buckets) and never finer than 15
/// minutes (673).
pub const MAX_POINTS_BEYOND_A_DAY: u32 = 800;
/// ...and at least this many, for narrow screens.
pub const MIN_POINTS_BEYOND_A_DAY: u32 = 200;

/// About how wide the plot of a widget of `size` is, in CSS pixels, on a page `viewport_px`
/// wide: the tenant page's grid (`grid-cols-1 md:grid-cols-2 xl:grid-cols-3 2xl:grid-cols-4`
/// in `pages/tenant.rs`, Tailwind's 768, 1280 and 1536 px breakpoints; a medium widget spans
/// two columns, a large one all, `components/widget.rs`) less the value axis.
pub fn chart_width_px(viewport_px: u32, size: WidgetSize) -> u32 {
    let columns = match viewport_px {
        0..768 => 1,
        768..1280 => 2,
        1280..1536 => 3,
        _ => 4,
    };
    let spans = match size {
        WidgetSize::Small => 1,
        WidgetSize::Medium => columns.min(2),
        WidgetSize::Large => columns,
    };
    (viewport_px * spans / columns).saturating_sub(60)
}
/// Row limit of a live load (15 minutes of raw points of every series of one metric).
pub const LIVE_LIMIT: u32 = 20_000;
/// Row limit of a raw history load; an answer that reaches it is cut short (oldest first), so
/// the load is repeated from rollups instead.
pub const RAW_LIMIT: u32 = 50_000;
/// Row limit of a rollup load: `MAX_POINTS` buckets for some 60 series.
pub const ROLLUP_LIMIT: u32 = 100_000;

/// The fixed choices of the range picker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    /// The last hour, raw.
    Hour,
    /// The last 24 hours.
    Day,
    /// The last 7 days.
    Week,
    /// The last 30 days.
    Month,
}

impl Preset {
    /// In the order the picker shows them.
    pub const ALL: [Preset; 4] = [Preset::Hour, Preset::Day, Preset::Week, Preset::Month];

    /// How far back it reaches.
    pub fn span_ms(self) -> i64 {
        match self {
            Preset::Hour => HOUR_MS,
            Preset::Day => DAY_MS,
            Preset::Week => 7 * DAY_MS,
            Preset::Month => 30 * DAY_MS,
        }
    }

    /// How it is written in the URL (`range=24h`).
    pub fn key(self) -> &'static str {
        match self {
            Preset::Hour => "1h",
            Preset::Day => "24h",
            Preset::Week => "7d",
            Preset::Month => "30d",
        }
    }

    /// What the picker's button says.
    pub fn label(self) -> &'static str {
        match self {
            Preset::Hour => "1 h",
            Preset::Day => "24 h",
            Preset::Week => "7 d",
            Preset::Month => "30 d",
        }
    }

    fn from_key(key: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.key() == key)
    }
}

/// What a tenant page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimeRange {
    /// The last [`WINDOW_MS`], raw, following the live stream.
    #[default]
    Live,
    /// A preset span ending now.
    Last(Preset),
    /// A fixed span: a custom range or a zoom. Start inclusive, end exclusive.
    Between {
        /// Unix milliseconds.
        start_ms: i64,
        /// Unix milliseconds, after `start_ms`.
        end_ms: i64,
    },
}

/// The resolution a load asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// Raw points.
    Raw,
    /// `resolution=auto` with `max_points`: the server picks the finest retained rollup.
    Auto,
}

/// One metric's load for a range: the query parameters besides tenant, metric and agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryPlan {
    /// Inclusive start, Unix milliseconds.
    pub start_ms: i64,
    /// Exclusive end; `None` reads up to now (what live and preset views want: nothing that
    /// arrives while the query runs is cut off).
    pub end_ms: Option<i64>,
    /// Raw or rollups.
    pub fetch: Fetch,
    /// With rollups: most buckets per series.
    pub max_points: u32,
    /// Row limit of the answer.
    pub limit: u32,
}

impl QueryPlan {
    /// The query of `metric` of `tenant` (of one agent, or of all) this plan asks.
    pub fn query(&self, tenant: &str, metric: &str, agent: Option<&str>) -> MetricsQuery {
        let (resolution, max_points) = match self.fetch {
            Fetch::Raw => (ResolutionRequest::Exact(Resolution::Raw), None),
            Fetch::Auto => (ResolutionRequest::Auto, Some(self.max_points as usize)),
        };
        MetricsQuery {
            tenant: Some(tenant.to_owned()),
            metric_name: Some(metric.to_owned()),
            agent_id: agent.map(str::to_owned),
            start_time: Some(format_millis(self.start_ms)),
            end_time: self.end_ms.map(format_millis),
            resolution: Some(resolution),
            max_points,
            limit: Some(self.limit as usize),
        }
    }

    /// What to ask instead when an answer of `count` rows hit the limit: a raw answer cut short
    /// lacks its newest points, so the same span is asked from rollups. `None` when the answer
    /// is complete or already from rollups.
    pub fn retry_after(&self, count: usize) -> Option<QueryPlan> {
        (self.fetch == Fetch::Raw && count >= self.limit as usize).then_some(QueryPlan {
            fetch: Fetch::Auto,
            limit: ROLLUP_LIMIT,
            ..*self
        })
    }
}

/// A query's query-string pairs, named and written as its serde form (the one the server reads):
/// text as it is, numbers in decimal; fields left out are absent.
pub fn query_pairs(query: &MetricsQuery) -> Vec<(String, String)> {
    match serde_json::to_value(query) {
        Ok(serde_json::Value::Object(fields)) => fields
            .into_iter()
            .map(|(name, value)| match value {
                serde_json::Value::String(text) => (name, text),
                other => (name, other.to_string()),
            })
            .collect(),
        // A struct of text, numbers and an enum written as text is always an object.
        _ => Vec::new(),
    }
}

impl TimeRange {
    /// A zoom into `start_ms..end_ms` (either order), widened around its middle to at least
    /// [`MIN_ZOOM_MS`].
    pub fn zoom(a_ms: i64, b_ms: i64) -> TimeRange {
        let (mut start_ms, mut end_ms) = (a_ms.min(b_ms), a_ms.max(b_ms));
        if end_ms - start_ms < MIN_ZOOM_MS {
            let middle = start_ms + (end_ms - start_ms) / 2;
            start_ms = middle - MIN_ZOOM_MS / 2;
            end_ms = start_ms + MIN_ZOOM_MS;
        }
        TimeRange::Between { start_ms, end_ms }
    }

    /// Read the range from a URL query (`range=24h`, or `from=...&to=...` in RFC 3339 or Unix
    /// seconds); anything else is live, so a mangled link still opens a working page.
    pub fn parse_query(query: &str) -> TimeRange {
        let value = |name: &str| {
            query.trim_start_matches('?').split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        };
        if let Some(preset) = value("range").and_then(Preset::from_key) {
            return TimeRange::Last(preset);
        }
        let time = |name: &str| value(name).and_then(|v| TimestampIn::from_query(v).to_millis().ok());
        match (time("from"), time("to")) {
            (Some(start_ms), Some(end_ms)) if end_ms > start_ms => TimeRange::Between { start_ms, end_ms },
            _ => TimeRange::Live,
        }
    }

    /// The URL query that [`TimeRange::parse_query`] reads back; empty for live.
    pub fn to_query(&self) -> String {
        match self {
            TimeRange::Live => String::new(),
            TimeRange::Last(preset) => format!("range={}", preset.key()),
            TimeRange::Between { start_ms, end_ms } => {
                format!("from={}&to={}", format_millis(*start_ms), format_millis(*end_ms))
            }
        }
    }

    /// Whether this is the streaming view.
    pub fn is_live(&self) -> bool {
        *self == TimeRange::Live
    }

    /// The time axis: `(start, end)` in Unix milliseconds, relative ranges ending at `now_ms`.
    pub fn window(&self, now_ms: i64) -> (i64, i64) {
        match *self {
            TimeRange::Live => (now_ms - WINDOW_MS, now_ms),
            TimeRange::Last(preset) => (now_ms - preset.span_ms(), now_ms),
            TimeRange::Between { start_ms, end_ms } => (start_ms, end_ms),
        }
    }

    /// What to ask the server for each metric, for charts `chart_px` wide.
    pub fn plan(&self, now_ms: i64, chart_px: u32) -> QueryPlan {
        let (start_ms, end_ms) = self.window(now_ms);
        let (end_ms, span) = match self {
            TimeRange::Between { .. } => (Some(end_ms), end_ms - start_ms),
            _ => (None, end_ms - start_ms),
        };
        let (fetch, limit) = match self {
            TimeRange::Live => (Fetch::Raw, LIVE_LIMIT),
            _ if span <= RAW_SPAN_MS => (Fetch::Raw, RAW_LIMIT),
            _ => (Fetch::Auto, ROLLUP_LIMIT),
        };
        // Up to a day the resolution is the rollups' finest (a day at one minute); beyond,
        // more buckets than a chart has pixels only cost time to fetch and draw.
        let max_points =
            if span <= DAY_MS { MAX_POINTS } else { chart_px.clamp(MIN_POINTS_BEYOND_A_DAY, MAX_POINTS_BEYOND_A_DAY) };
        QueryPlan { start_ms, end_ms, fetch, max_points, limit }
    }

    /// The span in words, for a chart's accessible name.
    pub fn describe(&self) -> String {
        match self {
            TimeRange::Live => format!("over the last {} minutes, live", WINDOW_MS / MINUTE_MS),
            TimeRange::Last(Preset::Hour) => "over the last hour".into(),
            TimeRange::Last(Preset::Day) => "over the last 24 hours".into(),
            TimeRange::Last(preset) => format!("over the last {} days", preset.span_ms() / DAY_MS),
            TimeRange::Between { start_ms, end_ms } => {
                format!("from {} to {}", format_millis(*start_ms), format_millis(*end_ms))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_331_200_000; // 2025-11-28T12:00:00Z

    #[test]
    fn charts_are_about_as_wide_as_the_grid_makes_them() {
        let small = |px| chart_width_px(px, WidgetSize::Small);
        assert_eq!(small(400), 340, "phones: one column");
        assert_eq!(small(1000), 440, "two columns");
        assert_eq!(small(1280), 366, "three columns");
        assert_eq!(small(1920), 420, "four columns");
        assert_eq!(chart_width_px(1920, WidgetSize::Medium), 900, "two of four columns");
        assert_eq!(chart_width_px(1920, WidgetSize::Large), 1860, "all four");
        assert_eq!(chart_width_px(400, WidgetSize::Large), 340, "phones: one column whatever the size");
    }

    #[test]
    fn ranges_survive_the_url() {
        for range in [
            TimeRange::Live,
            TimeRange::Last(Preset::Hour),
            TimeRange::Last(Preset::Day),
            TimeRange::Last(Preset::Week),
            TimeRange::Last(Preset::Month),
            TimeRange::Between { start_ms: NOW - 1234, end_ms: NOW },
        ] {
            assert_eq!(TimeRange::parse_query(&range.to_query()), range, "{range:?}");
        }
        assert_eq!(TimeRange::Last(Preset::Day).to_query(), "range=24h");
        assert_eq!(
            TimeRange::Between { start_ms: NOW, end_ms: NOW + 60_000 }.to_query(),
            "from=2025-11-28T12:00:00.000Z&to=2025-11-28T12:01:00.000Z"
        );
    }

    #[test]
    fn odd_queries_read_as_live_or_what_they_clearly_say() {
        let check = |query: &str, expected: TimeRange| assert_eq!(TimeRange::parse_query(query), expected, "{query}");
        check("", TimeRange::Live);
        check("range=2h", TimeRange::Live);
        check("?range=7d", TimeRange::Last(Preset::Week));
        check("x=1&range=30d", TimeRange::Last(Preset::Month));
        check("from=1764331200&to=1764334800", TimeRange::Between { start_ms: NOW, end_ms: NOW + HOUR_MS });
        check("from=1764334800&to=1764331200", TimeRange::Live);
        check("from=yesterday&to=1764331200", TimeRange::Live);
        check("rangex=24h", TimeRange::Live);
    }

    #[test]
    fn up_to_an_hour_is_raw_and_beyond_it_rollups() {
        let live = TimeRange::Live.plan(NOW, 400);
        assert_eq!((live.start_ms, live.end_ms, live.fetch), (NOW - WINDOW_MS, None, Fetch::Raw));
        let hour = TimeRange::Last(Preset::Hour).plan(NOW, 400);
        assert_eq!((hour.start_ms, hour.fetch, hour.limit), (NOW - HOUR_MS, Fetch::Raw, RAW_LIMIT));
        let day = TimeRange::Last(Preset::Day).plan(NOW, 400);
        assert_eq!((day.start_ms, day.end_ms, day.fetch), (NOW - DAY_MS, None, Fetch::Auto));
        let zoom = TimeRange::zoom(NOW - 20 * MINUTE_MS, NOW - 5 * MINUTE_MS).plan(NOW, 400);
        assert_eq!((zoom.end_ms, zoom.fetch), (Some(NOW - 5 * MINUTE_MS), Fetch::Raw));
        let wide = TimeRange::Between { start_ms: NOW - 2 * HOUR_MS, end_ms: NOW }.plan(NOW, 400);
        assert_eq!(wide.fetch, Fetch::Auto);
        let query = day.query("acme", "cpu", None);
        assert_eq!((query.resolution, query.max_points), (Some(ResolutionRequest::Auto), Some(1_500)));
        let week = TimeRange::Last(Preset::Week).plan(NOW, 400).query("acme", "cpu", None);
        assert_eq!(week.max_points, Some(400));
        let wide_screen = TimeRange::Last(Preset::Week).plan(NOW, 5_000);
        assert_eq!(wide_screen.max_points, MAX_POINTS_BEYOND_A_DAY);
        assert_eq!(TimeRange::Last(Preset::Week).plan(NOW, 50).max_points, MIN_POINTS_BEYOND_A_DAY);
        assert_eq!(TimeRange::Last(Preset::Day).plan(NOW, 50).max_points, MAX_POINTS, "a day stays at one minute");
        assert_eq!(query.end_time, None);
        assert!(zoom.query("acme", "cpu", None).end_time.is_some());
        let raw = hour.query("acme", "cpu", Some("web-1"));
        assert_eq!((raw.resolution, raw.max_points), (Some(ResolutionRequest::Exact(Resolution::Raw)), None));
    }

    #[test]
    fn a_query_is_sent_with_the_names_and_values_the_server_reads() {
        let pairs = |query: &MetricsQuery| {
            let mut pairs = query_pairs(query);
            pairs.sort();
            pairs
        };
        let pair = |name: &str, value: &str| (name.to_owned(), value.to_owned());
        let day = TimeRange::Last(Preset::Day).plan(NOW, 400).query("acme", "cpu", Some("web-1"));
        assert_eq!(
            pairs(&day),
            vec![
                pair("agent_id", "web-1"),
                pair("limit", &ROLLUP_LIMIT.to_string()),
                pair("max_points", "1500"),
                pair("metric_name", "cpu"),
                pair("resolution", "auto"),
                pair("start_time", &format_millis(NOW - DAY_MS)),
                pair("tenant", "acme"),
            ]
        );
        let hour = TimeRange::Last(Preset::Hour).plan(NOW, 400).query("acme", "cpu", None);
        assert!(pairs(&hour).contains(&pair("resolution", "raw")), "{hour:?}");
    }

    #[test]
    fn a_raw_answer_cut_short_is_asked_again_from_rollups() {
        let hour = TimeRange::Last(Preset::Hour).plan(NOW, 400);
        assert_eq!(hour.retry_after(RAW_LIMIT as usize - 1), None);
        let retry = hour.retry_after(RAW_LIMIT as usize).unwrap_or(hour);
        assert_eq!((retry.fetch, retry.start_ms), (Fetch::Auto, hour.start_ms));
        assert_eq!(retry.retry_after(ROLLUP_LIMIT as usize), None, "rollups are not retried");
    }

    #[test]
    fn zooms_are_ordered_and_never_too_narrow() {
        assert_eq!(TimeRange::zoom(NOW, NOW - 60_000), TimeRange::Between { start_ms: NOW - 60_000, end_ms: NOW });
        assert_eq!(
            TimeRange::zoom(NOW, NOW + 2_000),
            TimeRange::Between { start_ms: NOW + 1_000 - MIN_ZOOM_MS / 2, end_ms: NOW + 1_000 + MIN_ZOOM_MS / 2 }
        );
        assert_eq!(TimeRange::Last(Preset::Week).window(NOW), (NOW - 7 * DAY_MS, NOW));
    }
}
