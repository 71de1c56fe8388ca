//! Ready-to-run ways to send a first metric, for a new token or an empty tenant: `curl`, the
//! host agent, `mosquitto_pub` and the Rust client, filled in with this server's address, the
//! tenant, the token and (when the server reads MQTT) the broker and topic root.

use microdash_core::api::MqttConnect;
use microdash_core::mqtt::token_username;

/// The metric the snippets send: the host agent's CPU metric, so the first chart is the one
/// a host's page starts with.
pub const FIRST_METRIC: &str = "cpu.usage_percent";
/// The agent id the snippets send as.
pub const FIRST_AGENT: &str = "my-first-host";
/// Stands in for the token where none is at hand (an empty tenant's page).
pub const TOKEN_PLACEHOLDER: &str = "$MICRODASH_TOKEN";

/// What the snippets are made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The dashboard's origin, which is the API's: `http://host:port`.
    pub origin: String,
    /// The host the page was loaded from (for a broker on the dashboard's own host).
    pub page_host: String,
    /// Tenant slug.
    pub tenant: String,
    /// The token, or [`TOKEN_PLACEHOLDER`].
    pub token: String,
    /// The broker, if the server reads MQTT.
    pub mqtt: Option<MqttConnect>,
}

/// One snippet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// Stable id (`curl`, `agent`, `mqtt`, `rust`), for element ids and tests.
    pub id: &'static str,
    /// What it is.
    pub title: &'static str,
    /// The text to copy.
    pub text: String,
}

/// Single-quote `text` for a POSIX shell.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The snippets for `target`, `curl` first.
pub fn snippets(target: &Target) -> Vec<Snippet> {
    let Target { origin, tenant, token, .. } = target;
    // A placeholder stays an unquoted shell variable so the shell fills it in.
    let shell_token = if token == TOKEN_PLACEHOLDER { format!("\"{token}\"") } else { quoted(token) };
    let bearer = if token == TOKEN_PLACEHOLDER {
        format!("\"Authorization: Bearer {token}\"")
    } else {
        quoted(&format!("Authorization: Bearer {token}"))
    };
    let body = format!(r#"{{"metric_name":"{FIRST_METRIC}","value":42,"agent_id":"{FIRST_AGENT}"}}"#);
    let mut out = vec![Snippet {
        id: "curl",
        title: "curl",
        text: format!(
            "curl -sS -X POST {origin}/api/v1/metrics -H {bearer} -H 'Content-Type: application/json' -d {}",
            quoted(&body)
        ),
    }];
    let broker = target.mqtt.as_ref().map(|mqtt| {
        let host = mqtt.host.clone().unwrap_or_else(|| target.page_host.clone());
        (host, mqtt.port, mqtt.topic_root.clone())
    });
    let agent = match &broker {
        Some((host, port, root)) => format!(
            "microdash-agent --url tcp://{host}:{port} --tenant {tenant} --token {shell_token} --topic-root {root}"
        ),
        None => format!("microdash-agent --url {origin} --tenant {tenant} --token {shell_token}"),
    };
    out.push(Snippet { id: "agent", title: "Host agent (CPU, memory, disk, network)", text: agent });
    if let Some((host, port, root)) = &broker {
        let username = if token == TOKEN_PLACEHOLDER {
            "\"${MICRODASH_TOKEN:0:12}\"".to_owned()
        } else {
            quoted(token_username(token))
        };
        out.push(Snippet {
            id: "mqtt",
            title: "mosquitto_pub",
            text: format!(
                "mosquitto_pub -h {host} -p {port} -u {username} -P {shell_token} -q 1 -t {root}/{tenant}/{FIRST_AGENT}/{FIRST_METRIC} -m 42"
            ),
        });
    }
    out.push(Snippet {
        id: "rust",
        title: "Rust (microdash-client)",
        text: format!(
            "use microdash_client::{{Client, MetricIn}};\n\n\
             let client = Client::builder(\"{origin}\").token(\"{token}\").build()?;\n\
             client.push(&[MetricIn::new(\"{FIRST_METRIC}\", 42.0).agent(\"{FIRST_AGENT}\")]).await?;"
        ),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(token: &str, mqtt: Option<MqttConnect>) -> Target {
        Target {
            origin: "http://127.0.0.1:8080".into(),
            page_host: "dash.local".into(),
            tenant: "acme".into(),
            token: token.into(),
            mqtt,
        }
    }

    fn text(snippets: &[Snippet], id: &str) -> String {
        snippets.iter().find(|s| s.id == id).map(|s| s.text.clone()).unwrap_or_default()
    }

    #[test]
    fn snippets_carry_the_server_the_tenant_and_the_token() {
        let token = "mdk_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn";
        let mqtt = MqttConnect { host: None, port: 1884, topic_root: "metrics".into() };
        let all = snippets(&target(token, Some(mqtt)));
        assert_eq!(all.iter().map(|s| s.id).collect::<Vec<_>>(), ["curl", "agent", "mqtt", "rust"]);
        assert_eq!(
            text(&all, "curl"),
            format!(
                "curl -sS -X POST http://127.0.0.1:8080/api/v1/metrics -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' -d '{{\"metric_name\":\"cpu.usage_percent\",\"value\":42,\"agent_id\":\"my-first-host\"}}'"
            )
        );
        assert_eq!(
            text(&all, "agent"),
            format!("microdash-agent --url tcp://dash.local:1884 --tenant acme --token '{token}' --topic-root metrics")
        );
        assert_eq!(
            text(&all, "mqtt"),
            format!(
                "mosquitto_pub -h dash.local -p 1884 -u 'mdk_ABCDEFGH' -P '{token}' -q 1 -t metrics/acme/my-first-host/cpu.usage_percent -m 42"
            )
        );
        assert!(text(&all, "rust").contains(&format!(".token(\"{token}\")")));
    }

    #[test]
    fn without_mqtt_the_agent_uses_http_and_a_placeholder_stays_a_variable() {
        let all = snippets(&target(TOKEN_PLACEHOLDER, None));
        assert_eq!(all.iter().map(|s| s.id).collect::<Vec<_>>(), ["curl", "agent", "rust"]);
        assert!(text(&all, "curl").contains("-H \"Authorization: Bearer $MICRODASH_TOKEN\""));
        assert_eq!(
            text(&all, "agent"),
            "microdash-agent --url http://127.0.0.1:8080 --tenant acme --token \"$MICRODASH_TOKEN\""
        );
        let broker = MqttConnect { host: Some("mqtt.example".into()), port: 1883, topic_root: "m".into() };
        assert!(
            text(&snippets(&target(TOKEN_PLACEHOLDER, Some(broker))), "mqtt")
                .contains("-h mqtt.example -p 1883 -u \"${MICRODASH_TOKEN:0:12}\"")
        );
        assert_eq!(quoted("it's"), r"'it'\''s'");
    }
}
