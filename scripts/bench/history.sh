#!/usr/bin/env bash
# History query benchmark: seed 30 days of history for 1,000 series at a 10-second interval
# (raw points for the last 24 h, rollups before), then time resolution=auto queries: 7 days of
# one series, and 30 days of the 20 series of one agent.
# usage: scripts/bench/history.sh PORT [DATABASE_URL]   (default: a fresh SQLite file)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --bin microdash --bin microdash-loadgen >&2
PORT=$1
DIR=${TMPDIR:-/tmp}/microdash_bench_history_$PORT
rm -rf "$DIR" && mkdir -p "$DIR"
export BENCH_DATABASE_URL=${2:-sqlite://$DIR/md.db}
./target/release/microdash-loadgen seed --database-url "$BENCH_DATABASE_URL" --series 1000 --interval-s 10 \
  --rollup-days 30 --raw-hours 24
source scripts/bench/lib.sh
start_demo_server "$DIR" "$PORT" MICRODASH_MQTT_LISTEN_ADDR=off
echo "7 days, one series:"
./target/release/microdash-loadgen query --url "$URL" --token "$TOKEN" --metric-name seed.metric0 --agent-id seed-0 \
  --range-s $((7 * 86400)) --requests 200
echo "30 days, 20 series:"
./target/release/microdash-loadgen query --url "$URL" --token "$TOKEN" --agent-id seed-0 --range-s $((30 * 86400)) \
  --requests 100
