//! MQTT topics and payloads, as pure functions: the bridge parses with them, the agent builds
//! topics with them.
//!
//! Topic: `{root}/{tenant}/{agent_id}/{metric_name}` (root `metrics` by default). Payload: a
//! bare JSON number (the value), or an object with `value` and optionally `timestamp`,
//! `agent_id`, `metric_name`, `tenant_id`, `dedupe_id` and `tags`. Fields that repeat the topic
//! must agree with it, so a payload cannot smuggle a metric into another tenant or agent.

use crate::api::{FieldError, MetricIn};
use crate::metric::{Limits, Metric, PayloadError, check_identifier, validate};

/// The default first topic level.
pub const DEFAULT_TOPIC_ROOT: &str = "metrics";

/// Mosquitto's password-file hash (`$7$`: PBKDF2-HMAC-SHA512, 101 rounds, 12-byte salt,
/// 64-byte key, standard base64), so microdash can write a password file Mosquitto reads.
pub fn mosquitto_password_hash(password: &str, salt: &[u8; 12]) -> String {
    use base64::Engine;
    const ROUNDS: u32 = 101;
    let mut key = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password.as_bytes(), salt, ROUNDS, &mut key);
    let b64 = base64::engine::general_purpose::STANDARD;
    format!("$7${ROUNDS}${}${}", b64.encode(salt), b64.encode(key))
}

/// The broker username of an ingest token: its recognisable prefix, so an agent needs nothing
/// but the token.
pub fn token_username(token: &str) -> &str {
    crate::token::display_prefix(token)
}

/// The parts of a metric topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic<'a> {
    /// Tenant slug.
    pub tenant: &'a str,
    /// Agent id.
    pub agent_id: &'a str,
    /// Metric name.
    pub metric_name: &'a str,
}

/// The topic a metric is published on.
pub fn topic(root: &str, tenant: &str, agent_id: &str, metric_name: &str) -> String {
    format!("{root}/{tenant}/{agent_id}/{metric_name}")
}

/// Split `{root}/{tenant}/{agent_id}/{metric_name}`, checking each part.
pub fn parse_topic<'a>(root: &str, topic: &'a str, limits: &Limits) -> Result<Topic<'a>, String> {
    let rest = topic
        .strip_prefix(root)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| format!("topic {topic:?} is not under {root}/"))?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [tenant, agent_id, metric_name] = parts.as_slice() else {
        return Err(format!("topic {topic:?} is not {root}/{{tenant}}/{{agent_id}}/{{metric_name}}"));
    };
    crate::token::check_slug(tenant).map_err(|m| format!("tenant in topic {topic:?}: {m}"))?;
    check_identifier(agent_id, limits.max_agent_id_bytes).map_err(|m| format!("agent_id in topic {topic:?} {m}"))?;
    check_identifier(metric_name, limits.max_name_bytes).map_err(|m| format!("metric_name in topic {topic:?} {m}"))?;
    Ok(Topic { tenant, agent_id, metric_name })
}

/// The metric in a message published on `topic`.
pub fn parse_payload(topic: &Topic<'_>, payload: &[u8], limits: &Limits, now_ms: i64) -> Result<Metric, PayloadError> {
    if payload.len() > limits.max_body_bytes {
        return Err(PayloadError::Malformed(format!("payload is larger than {} bytes", limits.max_body_bytes)));
    }
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| PayloadError::Malformed(format!("payload is not JSON: {e}")))?;
    let mut errors = Vec::new();
    let mut input = match value {
        serde_json::Value::Number(_) => MetricIn { value: value.as_f64(), ..MetricIn::default() },
        serde_json::Value::Object(mut object) => {
            // Repeats of the topic must agree with it.
            for (field, expected) in [("tenant_id", topic.tenant), ("tenant", topic.tenant)] {
                if let Some(given) = object.remove(field)
                    && given.as_str() != Some(expected)
                {
                    errors.push(FieldError::new(
                        None,
                        Some(field.into()),
                        format!("must equal the topic's {expected:?}"),
                    ));
                }
            }
            serde_json::from_value::<MetricIn>(serde_json::Value::Object(object))
                .map_err(|e| PayloadError::Malformed(format!("payload object: {e}")))?
        }
        _ => return Err(PayloadError::Malformed("payload must be a number or a JSON object".into())),
    };
    for (field, given, expected) in [
        ("agent_id", input.agent_id.as_deref(), topic.agent_id),
        ("metric_name", input.metric_name.as_deref(), topic.metric_name),
    ] {
        if given.is_some_and(|g| g != expected) {
            errors.push(FieldError::new(None, Some(field.into()), format!("must equal the topic's {expected:?}")));
        }
    }
    input.agent_id = Some(topic.agent_id.to_owned());
    input.metric_name = Some(topic.metric_name.to_owned());
    match validate(input, limits, now_ms) {
        Ok(metric) if errors.is_empty() => Ok(metric),
        Ok(_) => Err(PayloadError::Invalid { metrics: 1, errors }),
        Err(more) => {
            errors.extend(more);
            Err(PayloadError::Invalid { metrics: 1, errors })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn fields(err: PayloadError) -> Vec<String> {
        let PayloadError::Invalid { errors, .. } = err else { panic!("{err:?}") };
        errors.into_iter().map(|e| e.field.unwrap_or_default()).collect()
    }

    #[test]
    fn password_hashes_match_mosquitto_passwd() {
        // `mosquitto_passwd -b` (Mosquitto 2.0.11) wrote this for "secret".
        let salt: [u8; 12] = [176, 115, 39, 179, 184, 206, 59, 218, 2, 240, 158, 102];
        assert_eq!(
            mosquitto_password_hash("secret", &salt),
            "$7$101$sHMns7jOO9oC8J5m$5qHhK6V64e6igRzf2goXyuLJvjS910MyyDNgTeYjrJe7mqXTFkx67KCsFzAhlaCC91AAnMcL4cUEJ9+m3If3Jw=="
        );
    }

    #[test]
    fn topics_round_trip_and_bad_ones_are_named() {
        let limits = Limits::default();
        let t = topic("metrics", "acme", "web-1", "cpu.usage_percent");
        assert_eq!(
            parse_topic("metrics", &t, &limits),
            Ok(Topic { tenant: "acme", agent_id: "web-1", metric_name: "cpu.usage_percent" })
        );
        for bad in [
            "other/acme/a/m",
            "metrics/acme/a",
            "metrics/acme/a/m/x",
            "metrics/Acme/a/m",
            "metrics/acme/a b/m",
            "metrics/acme//m",
        ] {
            assert!(parse_topic("metrics", bad, &limits).is_err(), "{bad}");
        }
        assert!(parse_topic("test-1/metrics", "test-1/metrics/acme/a/m", &limits).is_ok());
    }

    #[test]
    fn payloads_are_numbers_or_objects_that_agree_with_the_topic() {
        let limits = Limits::default();
        let topic = Topic { tenant: "acme", agent_id: "web-1", metric_name: "cpu" };
        let bare = parse_payload(&topic, b"42.5", &limits, NOW).unwrap();
        assert_eq!(
            (bare.name.as_str(), bare.agent_id.as_deref(), bare.value, bare.timestamp_ms),
            ("cpu", Some("web-1"), 42.5, NOW)
        );

        let full = br#"{"value":1,"timestamp":1700000001,"agent_id":"web-1","tenant_id":"acme","dedupe_id":"d1","tags":{"core":"0"},"extra":true}"#;
        let metric = parse_payload(&topic, full, &limits, NOW).unwrap();
        assert_eq!((metric.timestamp_ms, metric.dedupe_id.as_deref()), (1_700_000_001_000, Some("d1")));
        assert_eq!(metric.tags["core"], "0");

        let mismatched = br#"{"value":1,"agent_id":"db-1","tenant_id":"evil","metric_name":"mem"}"#;
        assert_eq!(
            fields(parse_payload(&topic, mismatched, &limits, NOW).unwrap_err()),
            ["tenant_id", "agent_id", "metric_name"]
        );
        assert_eq!(fields(parse_payload(&topic, br#"{"timestamp":1}"#, &limits, NOW).unwrap_err()), ["value"]);
        for malformed in [&b"not json"[..], b"\"42\"", b"[1,2]", br#"{"value":"high"}"#] {
            assert!(
                matches!(parse_payload(&topic, malformed, &limits, NOW), Err(PayloadError::Malformed(_))),
                "{malformed:?}"
            );
        }
        let small = Limits { max_body_bytes: 4, ..Limits::default() };
        assert!(matches!(parse_payload(&topic, b"12345", &small, NOW), Err(PayloadError::Malformed(_))));
    }
}
