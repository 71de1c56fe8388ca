#!/usr/bin/env bash
# Dashboard benchmarks: cold first load to the first chart with data (live, then the 7-day
# history view), and POST-to-drawn latency
# while RATE metrics/s of other load flow into the same tenant (its charts are on screen too).
# usage: scripts/bench/dashboard.sh PORT [RATE] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/build-web.sh >/dev/null 2>&1
cargo build --release --bin microdash --bin microdash-loadgen >&2
PORT=$1 RATE=${2:-1000} SECONDS_=${3:-30}
DIR=${TMPDIR:-/tmp}/microdash_bench_web_$PORT
rm -rf "$DIR" && mkdir -p "$DIR"
source scripts/bench/lib.sh
start_demo_server "$DIR" "$PORT" MICRODASH_MQTT_LISTEN_ADDR=off
echo "sizes (bytes, gzip -9):"
for f in web/dist/microdash_web_bg.wasm web/dist/microdash_web.js web/dist/app.css web/dist/index.html; do
  printf '  %-28s %8d  gz %7d\n' "$(basename "$f")" "$(stat -c %s "$f")" "$(stat -c %s "$f.gz")"
done
# Some history on screen before the first load; then steady load during the measurement.
./target/release/microdash-loadgen http --url "$URL" --token "$TOKEN" --rate 1000 --batch-size 50 --concurrency 2 \
  --agents 4 --duration-s 5 --probe-interval-ms 0 > /dev/null
echo "cold loads with the server idle:"
(cd web && COLD_ONLY=1 node bench/dashboard.mjs "$URL" "$TOKEN" "$PASSWORD")
echo "the 7-day view of 10 charts (7 days x 10 metrics x 4 agents at 60 s seeded through the API):"
(cd web && node bench/seed-history.mjs "$URL" "$TOKEN" 7 10 4 60 && RANGE=7d node bench/dashboard.mjs "$URL" "$TOKEN" "$PASSWORD")
echo "under $RATE metrics/s:"
./target/release/microdash-loadgen http --url "$URL" --token "$TOKEN" --rate "$RATE" --batch-size 50 --concurrency 2 \
  --agents 4 --duration-s $((SECONDS_ + 40)) --probe-interval-ms 0 > "$DIR/http.txt" &
LOAD=$!
(cd web && node bench/dashboard.mjs "$URL" "$TOKEN" "$PASSWORD" "$SECONDS_")
kill $LOAD 2>/dev/null || true
echo "the fleet overview: ${HOSTS:-200} hosts, cold first draw, then input delay while $RATE fleet metrics/s arrive:"
(cd web && RATE="$RATE" node bench/overview.mjs "$URL" "$TOKEN" "$PASSWORD" 20)
