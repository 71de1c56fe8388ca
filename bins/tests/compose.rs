//! docker-compose.yml checked structurally (no Docker engine runs in CI): the services and
//! their health checks exist, and every `MICRODASH_*` variable it sets is one the binary
//! reads.
#![allow(clippy::unwrap_used)]

mod common;

use serde_yaml::Value;

fn compose() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docker-compose.yml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The settings the binary knows, from `microdash config`.
fn known_settings() -> Vec<String> {
    let out = common::microdash_output(&["config"], &[]);
    let config: serde_json::Value = serde_json::from_str(&out).unwrap();
    config.as_object().unwrap().keys().map(|k| format!("MICRODASH_{}", k.to_uppercase())).collect()
}

#[test]
fn services_exist_with_health_checks_and_volumes() {
    let compose = compose();
    let services = compose["services"].as_mapping().unwrap();
    for name in ["app", "worker", "bridge", "mariadb", "redis", "mosquitto"] {
        let service = &services[name];
        assert!(service.is_mapping(), "service {name} is missing");
        assert!(service["healthcheck"]["test"].is_sequence(), "service {name} has no health check");
    }
    assert_eq!(services["app"]["command"][0], "server");
    // The API server serves MCP when the host says USE_MCP=true.
    assert_eq!(services["app"]["environment"]["MICRODASH_MCP"], "${USE_MCP:-false}");
    assert_eq!(services["worker"]["command"][0], "worker");
    assert_eq!(services["bridge"]["command"][0], "bridge");
    assert_eq!(services["mqtt-auth"]["command"][0], "mqtt-auth");
    // The broker only lets in the accounts mqtt-auth writes, and mqtt-auth can signal it.
    let mosquitto_conf =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/mosquitto.conf")).unwrap();
    assert!(mosquitto_conf.contains("allow_anonymous false"), "{mosquitto_conf}");
    assert_eq!(services["mosquitto"]["pid"], "service:mqtt-auth");
    // So its health check must sign in, with the account the bridge uses.
    let check = services["mosquitto"]["healthcheck"]["test"][1].as_str().unwrap();
    assert!(check.contains("-u \"$$MICRODASH_MQTT_USERNAME\" -P \"$$MICRODASH_MQTT_PASSWORD\""), "{check}");
    for key in ["MICRODASH_MQTT_USERNAME", "MICRODASH_MQTT_PASSWORD"] {
        assert_eq!(services["mosquitto"]["environment"][key], services["bridge"]["environment"][key], "{key}");
    }
    for (name, volume) in [("mariadb", "mariadb-data"), ("redis", "redis-data"), ("mosquitto", "mosquitto-data")] {
        let mounts = services[name]["volumes"].as_sequence().unwrap();
        assert!(mounts.iter().any(|m| m.as_str().unwrap().starts_with(volume)), "{name} does not mount {volume}");
        assert!(compose["volumes"].as_mapping().unwrap().contains_key(volume));
    }
}

#[test]
fn environment_names_match_what_the_binary_reads() {
    let known = known_settings();
    let compose = compose();
    for name in ["app", "worker", "bridge", "mqtt-auth"] {
        let env = compose["services"][name]["environment"].as_mapping().unwrap();
        let mut keys: Vec<String> =
            env.keys().filter_map(|k| k.as_str().map(str::to_owned)).filter(|k| k != "<<").collect();
        // The shared block merged in with `<<: *microdash-env`.
        keys.extend(compose["x-microdash-env"].as_mapping().unwrap().keys().map(|k| k.as_str().unwrap().to_owned()));
        for key in keys {
            assert!(known.contains(&key), "{name} sets {key}, which microdash does not read (known: {known:?})");
        }
    }
    let loadgen = compose["services"]["loadgen"]["environment"].as_mapping().unwrap();
    for key in loadgen.keys().map(|k| k.as_str().unwrap()) {
        assert!(["MICRODASH_LOADGEN_URL", "MICRODASH_LOADGEN_ADMIN_TOKEN"].contains(&key), "loadgen reads no {key}");
    }
}

#[test]
fn the_dockerfile_builds_the_binaries_compose_runs() {
    let dockerfile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Dockerfile")).unwrap();
    for needle in [
        "cargo build --release --locked -p microdash-bins",
        "target/release/microdash ",
        "target/release/microdash-loadgen",
        "ENTRYPOINT [\"microdash\"]",
    ] {
        assert!(dockerfile.contains(needle), "Dockerfile lacks {needle:?}");
    }
}
