//! Validated metrics and the validation that produces them.
//!
//! Wire input ([`crate::api::MetricIn`]) is permissive so that a bad request can be answered
//! with every problem at once; [`Metric`] is what the rest of the system may rely on: a name
//! that is safe in an MQTT topic, a finite value, a timestamp in milliseconds, bounded tags.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::{FieldError, MetricIn, TimestampIn};

/// Size limits applied to every incoming metric, whatever its source.
///
/// They bound memory per request and keep one tenant from bloating the series table with
/// unbounded names or tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest accepted HTTP request body, in bytes.
    pub max_body_bytes: usize,
    /// Most metrics in one request or one MQTT message.
    pub max_metrics_per_request: usize,
    /// Longest `metric_name`, in bytes.
    pub max_name_bytes: usize,
    /// Longest `agent_id`, in bytes.
    pub max_agent_id_bytes: usize,
    /// Most tags on one metric.
    pub max_tags: usize,
    /// Longest tag key, in bytes.
    pub max_tag_key_bytes: usize,
    /// Longest tag value, in bytes.
    pub max_tag_value_bytes: usize,
    /// Longest `dedupe_id`, in bytes.
    pub max_dedupe_id_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            max_metrics_per_request: 10_000,
            max_name_bytes: 200,
            max_agent_id_bytes: 128,
            max_tags: 32,
            max_tag_key_bytes: 64,
            max_tag_value_bytes: 256,
            max_dedupe_id_bytes: 128,
        }
    }
}

/// One validated measurement, ready to be queued and stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Metric name, `[A-Za-z0-9_.:-]+`.
    #[serde(rename = "n")]
    pub name: String,
    /// The agent (host, device) that produced it, if any.
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Free-form dimensions; sorted so that equal tag sets give equal series keys.
    #[serde(rename = "t", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Measurement time, Unix milliseconds.
    #[serde(rename = "ts")]
    pub timestamp_ms: i64,
    /// The measured value; always finite.
    #[serde(rename = "v")]
    pub value: f64,
    /// Client-chosen idempotency key, unique per tenant.
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub dedupe_id: Option<String>,
}

impl Metric {
    /// The series this metric belongs to, within `tenant_id`.
    pub fn series_key(&self, tenant_id: i64) -> SeriesKey {
        SeriesKey {
            tenant_id,
            name: self.name.clone(),
            agent_id: self.agent_id.clone().unwrap_or_default(),
            tags: canonical_tags(&self.tags),
        }
    }
}

/// Identity of a series: tenant, name, agent and tag set.
///
/// `agent_id` is empty for metrics without an agent and `tags` is the canonical JSON of the
/// tag map, so the key can be a plain unique index in every SQL backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// Owning tenant.
    pub tenant_id: i64,
    /// Metric name.
    pub name: String,
    /// Agent id, empty when absent.
    pub agent_id: String,
    /// Canonical JSON of the tags (`{}` when none).
    pub tags: String,
}

impl SeriesKey {
    /// Hex SHA-256 of name, agent and tags: a fixed-width unique key for storage, since
    /// indexes over long text columns are limited (MariaDB caps keys at 3072 bytes).
    pub fn identity_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for part in [&self.name, &self.agent_id, &self.tags] {
            hasher.update(part.as_bytes());
            // NUL cannot occur in names or agent ids, so the parts cannot run together.
            hasher.update([0]);
        }
        hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Canonical JSON text of a tag map: keys sorted, no whitespace.
pub fn canonical_tags(tags: &BTreeMap<String, String>) -> String {
    // Serialising a BTreeMap<String, String> cannot fail.
    serde_json::to_string(tags).unwrap_or_else(|_| "{}".to_owned())
}

/// Metrics of one tenant accepted together; the unit the queue carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// Owning tenant (database id).
    pub tenant_id: i64,
    /// When the server accepted the batch, Unix milliseconds; used for worker lag.
    pub received_at_ms: i64,
    /// The metrics, in request order.
    pub metrics: Vec<Metric>,
}

/// Why a payload could not be turned into metrics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PayloadError {
    /// The body is not JSON, or not an object or array of objects.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// More metrics than [`Limits::max_metrics_per_request`].
    #[error("too many metrics in one request: more than {max}")]
    TooMany {
        /// How many were read before giving up (one more than `max`; the rest of the
        /// request is not parsed, so a huge request costs no more than an allowed one).
        count: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The JSON was fine but some metrics are invalid; every problem is listed.
    #[error("{} invalid field(s)", .errors.len())]
    Invalid {
        /// Metrics in the request, all of which are rejected with it.
        metrics: usize,
        /// Every problem found.
        errors: Vec<FieldError>,
    },
}

impl PayloadError {
    /// The shared error classification.
    pub fn kind(&self) -> crate::ErrorKind {
        crate::ErrorKind::Invalid
    }

    /// How many metrics the rejected request carried (1 when the body could not be read as
    /// metrics at all), for counting rejections in metrics rather than requests.
    pub fn rejected_metrics(&self) -> usize {
        match self {
            PayloadError::Malformed(_) => 1,
            PayloadError::TooMany { count, .. } => *count,
            PayloadError::Invalid { metrics, .. } => (*metrics).max(1),
        }
    }
}

/// Parse a JSON body holding one metric object or an array of them, and validate each.
///
/// `now_ms` stamps metrics that carry no timestamp. The common case (valid input) takes a
/// single typed pass; only a body that fails to deserialise is re-read as a generic JSON
/// value, so that every problem can be reported with its index and field.
pub fn parse_metrics(body: &[u8], limits: &Limits, now_ms: i64) -> Result<Vec<Metric>, PayloadError> {
    let is_array = body.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| *b == b'[');
    let max = limits.max_metrics_per_request;
    let typed: Result<Vec<MetricIn>, _> = if is_array {
        let mut de = serde_json::Deserializer::from_slice(body);
        serde::de::DeserializeSeed::deserialize(AtMost(max), &mut de).and_then(|inputs| de.end().map(|()| inputs))
    } else {
        serde_json::from_slice::<MetricIn>(body).map(|m| vec![m])
    };
    let inputs = match typed {
        Ok(inputs) => inputs,
        Err(err) if err.to_string().starts_with(TOO_MANY) => return Err(PayloadError::TooMany { count: max + 1, max }),
        Err(err) => return Err(explain_type_errors(body, err, limits)),
    };
    validate_all(inputs, limits, now_ms)
}

/// Marks the deserialisation error that [`AtMost`] raises.
const TOO_MANY: &str = "microdash: too many metrics";

/// Deserialises a JSON array of metrics but stops at the first element past its bound, so
/// what a request makes the server allocate is bounded by the metric limit, not only by the
/// body limit.
struct AtMost(usize);

impl<'de> serde::de::DeserializeSeed<'de> for AtMost {
    type Value = Vec<MetricIn>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for AtMost {
    type Value = Vec<MetricIn>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of metrics")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(16).min(self.0));
        while let Some(metric) = seq.next_element::<MetricIn>()? {
            if out.len() == self.0 {
                return Err(serde::de::Error::custom(TOO_MANY));
            }
            out.push(metric);
        }
        Ok(out)
    }
}

/// Validate already-deserialised wire metrics; all problems are collected, none are dropped.
pub fn validate_all(inputs: Vec<MetricIn>, limits: &Limits, now_ms: i64) -> Result<Vec<Metric>, PayloadError> {
    if inputs.len() > limits.max_metrics_per_request {
        return Err(PayloadError::TooMany { count: inputs.len(), max: limits.max_metrics_per_request });
    }
    if inputs.is_empty() {
        return Err(PayloadError::Invalid {
            metrics: 0,
            errors: vec![FieldError::new(None, None, "no metrics in request")],
        });
    }
    let count = inputs.len();
    let mut errors = Vec::new();
    let mut metrics = Vec::with_capacity(count);
    for (index, input) in inputs.into_iter().enumerate() {
        match validate(input, limits, now_ms) {
            Ok(metric) => metrics.push(metric),
            Err(field_errors) => errors.extend(field_errors.into_iter().map(|mut e| {
                e.index = Some(index);
                e
            })),
        }
    }
    if errors.is_empty() { Ok(metrics) } else { Err(PayloadError::Invalid { metrics: count, errors }) }
}

/// Validate one wire metric. Errors carry the field but not yet the index.
pub fn validate(input: MetricIn, limits: &Limits, now_ms: i64) -> Result<Metric, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut fail = |field: &str, message: String| errors.push(FieldError::new(None, Some(field.to_owned()), message));

    match &input.metric_name {
        None => fail("metric_name", "is required".into()),
        Some(name) => {
            if let Err(msg) = check_identifier(name, limits.max_name_bytes) {
                fail("metric_name", msg);
            }
        }
    }
    match input.value {
        None => fail("value", "is required".into()),
        Some(v) if !v.is_finite() => fail("value", "must be a finite number".into()),
        Some(_) => {}
    }
    let timestamp_ms = match &input.timestamp {
        None => Some(now_ms),
        Some(ts) => match ts.to_millis() {
            Ok(ms) => Some(ms),
            Err(msg) => {
                fail("timestamp", msg);
                None
            }
        },
    };
    if let Some(agent) = &input.agent_id
        && let Err(msg) = check_identifier(agent, limits.max_agent_id_bytes)
    {
        fail("agent_id", msg);
    }
    if let Some(tags) = &input.tags {
        for (field, msg) in check_tags("tags", tags, limits) {
            fail(&field, msg);
        }
    }
    if let Some(id) = &input.dedupe_id
        && (id.is_empty() || id.len() > limits.max_dedupe_id_bytes)
    {
        fail("dedupe_id", format!("must be 1 to {} bytes", limits.max_dedupe_id_bytes));
    }

    match (input.metric_name, input.value, timestamp_ms) {
        (Some(name), Some(value), Some(timestamp_ms)) if errors.is_empty() => Ok(Metric {
            name,
            agent_id: input.agent_id,
            tags: input.tags.unwrap_or_default(),
            timestamp_ms,
            value,
            dedupe_id: input.dedupe_id,
        }),
        _ => Err(errors),
    }
}

/// Every problem of a tag map under `limits`, as `(field, message)` pairs: `field` is `map`
/// itself (too many entries) or `map.KEY`. `map` names the map in the input (`tags`, or
/// `labels` on alert rules).
pub fn check_tags(map: &str, tags: &BTreeMap<String, String>, limits: &Limits) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if tags.len() > limits.max_tags {
        problems.push((map.to_owned(), format!("has {} {map}, at most {} allowed", tags.len(), limits.max_tags)));
    }
    for (key, value) in tags {
        if let Err(msg) = check_identifier(key, limits.max_tag_key_bytes) {
            problems.push((format!("{map}.{key}"), format!("key {msg}")));
        }
        if value.len() > limits.max_tag_value_bytes {
            problems
                .push((format!("{map}.{key}"), format!("value is longer than {} bytes", limits.max_tag_value_bytes)));
        }
    }
    problems
}

/// Names, agent ids and tag keys share one alphabet that is safe in URLs and MQTT topics
/// (no `/`, `+`, `#` or whitespace).
pub fn check_identifier(s: &str, max_bytes: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > max_bytes {
        return Err(format!("is longer than {max_bytes} bytes"));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))) {
        return Err(format!("contains {c:?}; allowed are letters, digits, '_', '.', ':' and '-'"));
    }
    Ok(())
}

/// Slow path for a body that did not deserialise: find every field with the wrong type.
fn explain_type_errors(body: &[u8], err: serde_json::Error, limits: &Limits) -> PayloadError {
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        // Not JSON at all: the typed error already says where.
        Err(_) => return PayloadError::Malformed(err.to_string()),
    };
    let items = match value {
        serde_json::Value::Array(items) => items,
        obj @ serde_json::Value::Object(_) => vec![obj],
        _ => return PayloadError::Malformed("expected a metric object or an array of them".into()),
    };
    if items.len() > limits.max_metrics_per_request {
        return PayloadError::TooMany { count: items.len(), max: limits.max_metrics_per_request };
    }
    let mut errors = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            errors.push(FieldError::new(Some(index), None, "must be a JSON object"));
            continue;
        };
        let mut expect = |field: &str, ok: bool, what: &str| {
            if !ok {
                errors.push(FieldError::new(Some(index), Some(field.to_owned()), format!("must be {what}")));
            }
        };
        for (field, v) in obj {
            match field.as_str() {
                "metric_name" | "agent_id" | "dedupe_id" => expect(field, v.is_string() || v.is_null(), "a string"),
                "value" => expect(field, v.is_number() || v.is_null(), "a number"),
                "timestamp" => {
                    expect(field, v.is_string() || v.is_number() || v.is_null(), "an RFC 3339 string or Unix seconds")
                }
                "tags" => {
                    let ok = v.is_null()
                        || v.as_object().is_some_and(|tags| tags.values().all(serde_json::Value::is_string));
                    expect(field, ok, "an object of string values");
                }
                _ => {}
            }
        }
    }
    if errors.is_empty() {
        // Valid shape per field yet the typed pass failed (e.g. a number out of range).
        PayloadError::Malformed(err.to_string())
    } else {
        PayloadError::Invalid { metrics: items.len(), errors }
    }
}

impl TimestampIn {
    /// Unix milliseconds, or why the timestamp is unacceptable.
    pub fn to_millis(&self) -> Result<i64, String> {
        // Up to the end of year 9999, which RFC 3339 can express.
        const MAX_MS: i64 = 253_402_300_799_999;
        let ms = match self {
            TimestampIn::Rfc3339(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|e| format!("is not RFC 3339 ({e})"))?
                .timestamp_millis(),
            TimestampIn::UnixSeconds(secs) => {
                if !secs.is_finite() {
                    return Err("must be finite".into());
                }
                (secs * 1000.0).round() as i64
            }
        };
        if (0..=MAX_MS).contains(&ms) { Ok(ms) } else { Err("is outside 1970..=9999".into()) }
    }
}

/// Format Unix milliseconds as RFC 3339 UTC with millisecond precision.
pub fn format_millis(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|dt| dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    /// `(index, field)` of each expected validation error.
    type Problems<'a> = &'a [(Option<usize>, Option<&'a str>)];

    fn check(body: &str, expected: Result<usize, Problems<'_>>) {
        let got = parse_metrics(body.as_bytes(), &Limits::default(), NOW);
        match (got, expected) {
            (Ok(metrics), Ok(n)) => assert_eq!(metrics.len(), n, "{body}"),
            (Err(PayloadError::Invalid { errors, .. }), Err(want)) => {
                let got: Vec<_> = errors.iter().map(|e| (e.index, e.field.as_deref())).collect();
                assert_eq!(got, want, "{body}: {errors:?}");
            }
            (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn accepts_valid_single_and_bulk() {
        check(r#"{"metric_name":"cpu","value":1.5}"#, Ok(1));
        check(r#"[{"metric_name":"cpu","value":1},{"metric_name":"mem","value":2,"unknown":true}]"#, Ok(2));
        check(
            r#" [{"metric_name":"cpu","value":1,"timestamp":"2024-01-01T00:00:00Z","agent_id":"h-1","tags":{"dc":"x"},"dedupe_id":"a"}]"#,
            Ok(1),
        );
    }

    #[test]
    fn names_every_bad_field_with_its_index() {
        check(r#"[{"metric_name":"cpu","value":1},{"value":2}]"#, Err(&[(Some(1), Some("metric_name"))]));
        check(
            r#"[{"metric_name":"cpu"},{"metric_name":"a b","value":1,"timestamp":"yesterday"}]"#,
            Err(&[(Some(0), Some("value")), (Some(1), Some("metric_name")), (Some(1), Some("timestamp"))]),
        );
        check(
            r#"[{"metric_name":"cpu","value":"high"},{"metric_name":7,"value":1}]"#,
            Err(&[(Some(0), Some("value")), (Some(1), Some("metric_name"))]),
        );
        check(r#"{"metric_name":"cpu","value":1,"tags":{"k":1}}"#, Err(&[(Some(0), Some("tags"))]));
        check(r#"[1]"#, Err(&[(Some(0), None)]));
        check(r#"[]"#, Err(&[(None, None)]));
    }

    #[test]
    fn rejects_malformed_and_oversized() {
        assert!(matches!(parse_metrics(b"{nope", &Limits::default(), NOW), Err(PayloadError::Malformed(_))));
        assert!(matches!(parse_metrics(b"42", &Limits::default(), NOW), Err(PayloadError::Malformed(_))));
        let limits = Limits { max_metrics_per_request: 1, ..Limits::default() };
        let body = r#"[{"metric_name":"a","value":1},{"metric_name":"b","value":2}]"#;
        assert!(matches!(
            parse_metrics(body.as_bytes(), &limits, NOW),
            Err(PayloadError::TooMany { count: 2, max: 1 })
        ));
        // Parsing stops past the limit: the rest of a huge request is never read, even when
        // it would not parse.
        let huge = format!("[{}, this is not JSON", r#"{"metric_name":"a","value":1},"#.repeat(3));
        let limits = Limits { max_metrics_per_request: 2, ..Limits::default() };
        assert!(matches!(
            parse_metrics(huge.as_bytes(), &limits, NOW),
            Err(PayloadError::TooMany { count: 3, max: 2 })
        ));
    }

    #[test]
    fn timestamps_in_both_forms() {
        let m = &parse_metrics(br#"{"metric_name":"a","value":1,"timestamp":1700000000.25}"#, &Limits::default(), NOW)
            .unwrap()[0];
        assert_eq!(m.timestamp_ms, 1_700_000_000_250);
        let m = &parse_metrics(
            br#"{"metric_name":"a","value":1,"timestamp":"2023-11-14T22:13:20.5+00:00"}"#,
            &Limits::default(),
            NOW,
        )
        .unwrap()[0];
        assert_eq!(m.timestamp_ms, 1_700_000_000_500);
        let m = &parse_metrics(br#"{"metric_name":"a","value":1}"#, &Limits::default(), NOW).unwrap()[0];
        assert_eq!(m.timestamp_ms, NOW);
        check(r#"{"metric_name":"a","value":1,"timestamp":-5}"#, Err(&[(Some(0), Some("timestamp"))]));
        assert_eq!(format_millis(1_700_000_000_500), "2023-11-14T22:13:20.500Z");
    }

    #[test]
    fn enforces_tag_limits() {
        let limits = Limits { max_tags: 1, max_tag_value_bytes: 3, ..Limits::default() };
        let got = parse_metrics(br#"{"metric_name":"a","value":1,"tags":{"a":"1","b/c":"long"}}"#, &limits, NOW);
        let Err(PayloadError::Invalid { errors, .. }) = got else { panic!("{got:?}") };
        let fields: Vec<_> = errors.iter().map(|e| e.field.clone().unwrap()).collect();
        assert_eq!(fields, ["tags", "tags.b/c", "tags.b/c"]);
    }

    #[test]
    fn series_key_is_canonical() {
        let a = parse_metrics(br#"{"metric_name":"a","value":1,"tags":{"y":"1","x":"2"}}"#, &Limits::default(), NOW)
            .unwrap();
        let b = parse_metrics(br#"{"metric_name":"a","value":1,"tags":{"x":"2","y":"1"}}"#, &Limits::default(), NOW)
            .unwrap();
        assert_eq!(a[0].series_key(1), b[0].series_key(1));
        assert_eq!(a[0].series_key(1).tags, r#"{"x":"2","y":"1"}"#);
        assert_eq!(a[0].series_key(1).agent_id, "");
    }

    #[test]
    fn batch_round_trips_through_json() {
        let metrics =
            parse_metrics(br#"{"metric_name":"a","value":1,"agent_id":"h","dedupe_id":"d"}"#, &Limits::default(), NOW)
                .unwrap();
        let batch = Batch { tenant_id: 3, received_at_ms: NOW, metrics };
        let text = serde_json::to_string(&batch).unwrap();
        assert_eq!(serde_json::from_str::<Batch>(&text).unwrap(), batch);
    }
}
