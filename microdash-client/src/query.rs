//! [`RangeQuery`]: a typed query over a time range, raw or in rollups.

use microdash_core::api::{MetricsQuery, ResolutionRequest};

/// A typed query over `[start_ms, end_ms)` ([`Client::query_range`](crate::Client::query_range)): raw points or rollup
/// buckets (`min`, `max`, `count` and `last` beside the average in `value`).
#[derive(Debug, Clone, PartialEq)]
pub struct RangeQuery {
    /// Inclusive start, Unix milliseconds.
    pub start_ms: i64,
    /// Exclusive end, Unix milliseconds.
    pub end_ms: i64,
    /// Raw, 1m, 5m, or auto (the default here).
    pub resolution: ResolutionRequest,
    /// Only this metric.
    pub metric_name: Option<String>,
    /// Only this agent.
    pub agent_id: Option<String>,
    /// The tenant to read (admin tokens must name one).
    pub tenant: Option<String>,
    /// With auto: most buckets per series (the server's default is 1,500).
    pub max_points: Option<usize>,
    /// Most points in the answer (the most recent are kept).
    pub limit: Option<usize>,
}

impl RangeQuery {
    /// Everything of the token's tenant in the range, at `auto` resolution.
    pub fn new(start_ms: i64, end_ms: i64) -> Self {
        RangeQuery {
            start_ms,
            end_ms,
            resolution: ResolutionRequest::Auto,
            metric_name: None,
            agent_id: None,
            tenant: None,
            max_points: None,
            limit: None,
        }
    }

    /// Only this metric.
    pub fn metric(mut self, name: impl Into<String>) -> Self {
        self.metric_name = Some(name.into());
        self
    }

    /// Only this agent.
    pub fn agent(mut self, agent_id: impl Into<String>) -> Self {
        self.agent_id = Some(agent_id.into());
        self
    }

    /// Read this tenant.
    pub fn tenant(mut self, slug: impl Into<String>) -> Self {
        self.tenant = Some(slug.into());
        self
    }

    /// At this resolution.
    pub fn resolution(mut self, resolution: ResolutionRequest) -> Self {
        self.resolution = resolution;
        self
    }

    /// With auto: at most this many buckets per series.
    pub fn max_points(mut self, max_points: usize) -> Self {
        self.max_points = Some(max_points);
        self
    }

    /// At most this many points in all.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    pub(crate) fn to_wire(&self) -> MetricsQuery {
        let seconds = |ms: i64| format!("{}", ms as f64 / 1000.0);
        MetricsQuery {
            tenant: self.tenant.clone(),
            metric_name: self.metric_name.clone(),
            agent_id: self.agent_id.clone(),
            start_time: Some(seconds(self.start_ms)),
            end_time: Some(seconds(self.end_ms)),
            resolution: Some(self.resolution),
            max_points: self.max_points,
            limit: self.limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_is_sent_as_seconds_with_its_options() {
        let wire = RangeQuery::new(1_700_000_000_250, 1_700_000_060_000)
            .metric("cpu")
            .agent("web-1")
            .tenant("acme")
            .resolution(ResolutionRequest::Auto)
            .max_points(200)
            .limit(10)
            .to_wire();
        assert_eq!(wire.start_time.as_deref(), Some("1700000000.25"));
        assert_eq!(wire.end_time.as_deref(), Some("1700000060"));
        assert_eq!(wire.resolution, Some(ResolutionRequest::Auto));
        assert_eq!((wire.max_points, wire.limit), (Some(200), Some(10)));
        assert_eq!((wire.metric_name.as_deref(), wire.agent_id.as_deref()), (Some("cpu"), Some("web-1")));
        assert_eq!(wire.tenant.as_deref(), Some("acme"));
    }
}
