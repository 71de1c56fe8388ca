#!/usr/bin/env bash
# MQTT ingestion: the all-in-one server bridging from Mosquitto (BROKER) into SQLite while
# microdash-loadgen publishes at RATE messages/s (QoS 1, 0 = as fast as acknowledged); probes
# are timed from publish until the tenant's live stream delivers them. BROKER `mosquitto`
# starts a Mosquitto of the bench's own (on PORT+2) with the limits of deploy/mosquitto.conf;
# `embedded` publishes to the server's own MQTT endpoint (on PORT+1) instead.
# usage: scripts/bench/mqtt.sh PORT [RATE] [SECONDS] [BROKER]
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/build-deps.sh
cargo build --release --bin microdash --bin microdash-loadgen >&2
PORT=$1 RATE=${2:-20000} SECONDS_=${3:-20} BROKER=${4:-tcp://127.0.0.1:1883}
DIR=${TMPDIR:-/tmp}/microdash_bench_mqtt_$PORT
ROOT=bench$PORT-$$/metrics
rm -rf "$DIR" && mkdir -p "$DIR"
if [ "$BROKER" = mosquitto ]; then
  BROKER=tcp://127.0.0.1:$((PORT + 2))
  { echo "user root"; echo "listener $((PORT + 2)) 127.0.0.1"; echo "allow_anonymous true"
    grep -E '^max_(inflight|queued)_messages' deploy/mosquitto.conf; } > "$DIR/mosquitto.conf"
  mosquitto -c "$DIR/mosquitto.conf" 2> "$DIR/mosquitto.err" &
  MOSQUITTO=$!
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$((PORT + 2))) 2>/dev/null && break; sleep 0.1; done
fi
if [ "$BROKER" = embedded ]; then
  BROKER=tcp://127.0.0.1:$((PORT + 1)) SIGN_IN=--broker-token
  export MICRODASH_MQTT_LISTEN_ADDR=127.0.0.1:$((PORT + 1))
else
  SIGN_IN=
  export MICRODASH_MQTT_URL=$BROKER MICRODASH_MQTT_CLIENT_ID=bench-$PORT-$$
fi
source scripts/bench/lib.sh
start_demo_server "$DIR" "$PORT" MICRODASH_WEB_DIR= MICRODASH_MQTT_TOPIC_ROOT="$ROOT"
sleep 1 # the bridge subscribes
./target/release/microdash-loadgen mqtt --broker "$BROKER" $SIGN_IN --url "$URL" --token "$TOKEN" \
  --tenant demo --topic-root "$ROOT" --rate "$RATE" --duration-s "$SECONDS_" --window 1000
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^microdash_metrics_(accepted|persisted|rejected)_total'
