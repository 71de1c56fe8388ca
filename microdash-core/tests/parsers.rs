//! The parsers every client reaches, under arbitrary input: the JSON metric parser
//! (`metric::parse_metrics`) and the MQTT topic and payload parsers (`mqtt`). Whatever the
//! bytes, they answer (a result or an error), never panic, and allocate in proportion to
//! the input, not to what it claims; what they accept is valid.
//!
//! Cases per property: `PROPTEST_CASES` (default 256; a few seconds for all of them in a
//! debug build). Every test in this file holds `SERIAL` for its whole run, and the
//! properties run one after the other in one test, so what the process's allocator counts
//! while a case is parsed is that parse's own.
#![allow(clippy::unwrap_used)]

use std::alloc::System;
use std::collections::BTreeMap;
use std::sync::Mutex;

use microdash_core::Limits;
use microdash_core::metric::{Metric, PayloadError, parse_metrics};
use microdash_core::mqtt::{Topic, parse_payload, parse_topic};
use proptest::prelude::*;
use serde_json::{Value, json};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// One test at a time, input generation included, so a region's allocations are its own.
static SERIAL: Mutex<()> = Mutex::new(());

const NOW_MS: i64 = 1_795_867_200_000;

/// Small limits, so the cases reach every one of them.
fn limits() -> Limits {
    Limits {
        max_body_bytes: 64 * 1024,
        max_metrics_per_request: 20,
        max_name_bytes: 24,
        max_agent_id_bytes: 16,
        max_tags: 3,
        max_tag_key_bytes: 8,
        max_tag_value_bytes: 12,
        max_dedupe_id_bytes: 16,
    }
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// Most bytes a parse may allocate in all (freed or not) for `input_len` bytes of input: a
/// constant for the error messages and the first allocations, plus a multiple of the input
/// (a generic JSON value of a short number is 32 bytes, and vectors double as they grow).
fn allocation_budget(input_len: usize) -> usize {
    256 * 1024 + 80 * input_len
}

/// Run `parse` on `input`, checking what it allocates stays within the budget.
fn bounded<T>(input: &[u8], parse: impl FnOnce() -> T) -> T {
    let region = Region::new(ALLOCATOR);
    let result = parse();
    let allocated = region.change().bytes_allocated;
    assert!(
        allocated <= allocation_budget(input.len()),
        "{allocated} bytes allocated for {} bytes of input",
        input.len()
    );
    result
}

/// What every accepted metric must be, whatever the input was.
fn assert_valid(metric: &Metric, limits: &Limits) {
    let identifier = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
    };
    assert!(identifier(&metric.name, limits.max_name_bytes), "{metric:?}");
    assert!(metric.agent_id.as_deref().is_none_or(|a| identifier(a, limits.max_agent_id_bytes)), "{metric:?}");
    assert!(metric.value.is_finite(), "{metric:?}");
    assert!(metric.tags.len() <= limits.max_tags, "{metric:?}");
    for (k, v) in &metric.tags {
        assert!(
            !k.is_empty() && k.len() <= limits.max_tag_key_bytes && v.len() <= limits.max_tag_value_bytes,
            "{k}={v}"
        );
    }
    assert!(metric.dedupe_id.as_deref().is_none_or(|d| !d.is_empty() && d.len() <= limits.max_dedupe_id_bytes));
}

/// The JSON parser's answer to `body`, checked: accepted metrics are valid and within the
/// count limit, errors say how many metrics they turn away.
fn check_body(body: &[u8]) -> Result<Vec<Metric>, PayloadError> {
    let limits = limits();
    let parsed = bounded(body, || parse_metrics(body, &limits, NOW_MS));
    match &parsed {
        Ok(metrics) => {
            assert!(!metrics.is_empty() && metrics.len() <= limits.max_metrics_per_request);
            metrics.iter().for_each(|m| assert_valid(m, &limits));
        }
        Err(err) => assert!(err.rejected_metrics() >= 1, "{err:?}"),
    }
    parsed
}

/// Names, agents, tag keys: mostly valid, sometimes too long or with a stray character.
fn identifier() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9_.:-]{0,14}",
        1 => "[a-z]{20,30}",
        1 => ".{0,6}",
    ]
}

/// A JSON value where a number is expected: finite, huge, or not a number at all.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => any::<f64>().prop_filter("finite", |v| v.is_finite()).prop_map(|v| json!(v)),
        1 => any::<i64>().prop_map(|v| json!(v)),
        1 => Just(json!("42")),
        1 => Just(Value::Null),
        1 => Just(json!([1])),
    ]
}

fn timestamp() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0i64..4_000_000_000).prop_map(|s| json!(s)),
        Just(json!("2026-11-28T12:00:00Z")),
        Just(json!("2026-13-45T99:00:00Z")),
        Just(json!(-1e300)),
        ".{0,8}".prop_map(|s| json!(s)),
    ]
}

/// One metric object, mostly well-formed.
fn metric_object() -> impl Strategy<Value = Value> {
    (
        identifier(),
        number(),
        proptest::option::of(timestamp()),
        proptest::option::of(identifier()),
        proptest::option::of(proptest::collection::btree_map("[a-z]{1,10}", ".{0,14}", 0..5)),
        proptest::option::of("[a-z0-9]{1,20}"),
    )
        .prop_map(|(name, value, timestamp, agent, tags, dedupe)| {
            let mut object = serde_json::Map::new();
            object.insert("metric_name".into(), json!(name));
            object.insert("value".into(), value);
            let optional = [
                ("timestamp", timestamp),
                ("agent_id", agent.map(|a| json!(a))),
                ("tags", tags.map(|t: BTreeMap<String, String>| json!(t))),
                ("dedupe_id", dedupe.map(|d| json!(d))),
            ];
            for (key, value) in optional {
                if let Some(value) = value {
                    object.insert(key.into(), value);
                }
            }
            Value::Object(object)
        })
}

/// A request body: one object, or an array of up to one more than the limit allows.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        metric_object().prop_map(|m| serde_json::to_vec(&m).unwrap()),
        proptest::collection::vec(metric_object(), 0..=21).prop_map(|ms| serde_json::to_vec(&ms).unwrap()),
    ]
}

/// A change to some bytes: the way a broken client, a proxy or an attacker mangles a body.
#[derive(Debug, Clone)]
enum Mutation {
    /// Flip one bit.
    Flip(usize, u8),
    /// Cut the input short.
    Truncate(usize),
    /// Insert bytes.
    Insert(usize, Vec<u8>),
    /// Remove a run of bytes.
    Remove(usize, usize),
    /// Repeat a run of bytes in place.
    Repeat(usize, usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let tokens = prop_oneof![
        proptest::collection::vec(any::<u8>(), 1..8),
        Just(b"[".repeat(200)),
        Just(b"{\"a\":".repeat(200)),
        Just(b"\\u0000".to_vec()),
        Just(b"\\ud800".to_vec()),
        Just(b"1e999999".to_vec()),
        Just(b"-0.0e-400".to_vec()),
        Just(vec![0xff, 0xfe, 0xc0, 0x80]),
    ];
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), tokens).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<usize>(), 1usize..16).prop_map(|(at, n)| Mutation::Remove(at, n)),
        (any::<usize>(), 1usize..32, 1usize..64).prop_map(|(at, n, times)| Mutation::Repeat(at, n, times)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        let len = bytes.len();
        let at = |i: usize| if len == 0 { 0 } else { i % len };
        match mutation {
            Mutation::Flip(i, bit) if len > 0 => bytes[at(*i)] ^= 1 << bit,
            Mutation::Flip(..) => {}
            Mutation::Truncate(i) => bytes.truncate(at(*i)),
            Mutation::Insert(i, extra) => {
                let i = at(*i);
                bytes.splice(i..i, extra.iter().copied());
            }
            Mutation::Remove(i, n) => {
                let i = at(*i);
                bytes.drain(i..(i + n).min(len));
            }
            Mutation::Repeat(i, n, times) => {
                let i = at(*i);
                let run = bytes[i..(i + n).min(len)].to_vec();
                for _ in 0..*times {
                    bytes.splice(i..i, run.iter().copied());
                }
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(config())]

    fn arbitrary_bytes_are_answered_never_panic_and_allocate_within_bounds(
        body in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        let _ = check_body(&body);
    }

    fn mutated_bodies_are_answered_and_what_they_accept_is_valid(
        body in body(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let _ = check_body(&mutate(body, &mutations));
    }

    /// Unmutated bodies of valid metrics are accepted, each with its value.
    fn valid_bodies_are_accepted_whole(
        metrics in proptest::collection::vec(
            ("[a-z][a-z0-9_.]{0,10}", any::<f64>().prop_filter("finite", |v| v.is_finite()), "[a-z0-9-]{1,10}"),
            1..=20,
        ),
    ) {
        let objects: Vec<Value> =
            metrics.iter().map(|(n, v, a)| json!({"metric_name": n, "value": v, "agent_id": a})).collect();
        let parsed = check_body(&serde_json::to_vec(&objects).unwrap());
        let parsed = parsed.unwrap_or_else(|e| panic!("{objects:?}: {e:?}"));
        let values: Vec<f64> = parsed.iter().map(|m| m.value).collect();
        let sent: Vec<f64> = metrics.iter().map(|(_, v, _)| *v).collect();
        prop_assert_eq!(values, sent);
    }

    fn topics_of_any_text_are_answered_and_accepted_parts_are_valid(
        topic in prop_oneof![
            ".{0,80}",
            (identifier(), identifier(), identifier()).prop_map(|(t, a, m)| format!("metrics/{t}/{a}/{m}")),
        ],
    ) {
        let limits = limits();
        if let Ok(parsed) = bounded(topic.as_bytes(), || parse_topic("metrics", &topic, &limits)) {
            prop_assert_eq!(format!("metrics/{}/{}/{}", parsed.tenant, parsed.agent_id, parsed.metric_name), topic.clone());
            prop_assert!(microdash_core::token::check_slug(parsed.tenant).is_ok());
            prop_assert!(microdash_core::metric::check_identifier(parsed.agent_id, limits.max_agent_id_bytes).is_ok());
            prop_assert!(microdash_core::metric::check_identifier(parsed.metric_name, limits.max_name_bytes).is_ok());
        }
    }

    fn payloads_of_any_bytes_are_answered_and_agree_with_their_topic(
        payload in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            number().prop_map(|v| serde_json::to_vec(&v).unwrap()),
            metric_object().prop_map(|mut m| {
                // Sometimes the payload names the topic's parts, sometimes others.
                m["tenant_id"] = json!("acme");
                serde_json::to_vec(&m).unwrap()
            }),
        ],
        mutations in proptest::collection::vec(mutation(), 0..3),
    ) {
        let limits = limits();
        let topic = Topic { tenant: "acme", agent_id: "box-1", metric_name: "cpu" };
        let payload = mutate(payload, &mutations);
        if let Ok(metric) = bounded(&payload, || parse_payload(&topic, &payload, &limits, NOW_MS)) {
            assert_valid(&metric, &limits);
            prop_assert_eq!(metric.name.as_str(), "cpu");
            prop_assert_eq!(metric.agent_id.as_deref(), Some("box-1"));
        }
    }
}

/// Every property, one after the other (see the module's documentation).
#[test]
fn parsers_answer_arbitrary_input() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    arbitrary_bytes_are_answered_never_panic_and_allocate_within_bounds();
    mutated_bodies_are_answered_and_what_they_accept_is_valid();
    valid_bodies_are_accepted_whole();
    topics_of_any_text_are_answered_and_accepted_parts_are_valid();
    payloads_of_any_bytes_are_answered_and_agree_with_their_topic();
}

/// Nesting far deeper than the parser's recursion limit is an error, not a stack overflow.
#[test]
fn deep_nesting_is_refused() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for body in [b"[".repeat(1_000_000), b"[{\"tags\":".repeat(100_000), b"{\"value\":[".repeat(100_000)] {
        assert!(matches!(check_body(&body), Err(PayloadError::Malformed(_))));
    }
    let topic = Topic { tenant: "acme", agent_id: "box-1", metric_name: "cpu" };
    let payload = b"{\"tags\":[".repeat(100_000);
    assert!(parse_payload(&topic, &payload, &limits(), NOW_MS).is_err());
}

/// A request far over the metric limit is turned away after one more metric than allowed,
/// without reading (or allocating for) the rest.
#[test]
fn a_huge_request_is_refused_after_the_limit() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let one = br#"{"metric_name":"m","value":1},"#;
    let mut body = b"[".to_vec();
    body.extend(one.repeat(200_000));
    body.extend(br#"{"metric_name":"m","value":1}]"#);
    let limits = limits();
    let region = Region::new(ALLOCATOR);
    let parsed = parse_metrics(&body, &limits, NOW_MS);
    assert!(matches!(parsed, Err(PayloadError::TooMany { count: 21, max: 20 })), "{parsed:?}");
    let allocated = region.change().bytes_allocated;
    assert!(allocated < 256 * 1024, "{allocated} bytes for a {} byte body", body.len());
}
