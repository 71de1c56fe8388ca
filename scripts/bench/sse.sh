#!/usr/bin/env bash
# Live stream fan-out: one all-in-one server, CLIENTS streams of the demo tenant, RATE metrics/s
# pushed into it; reports probe delivery lag on every stream and the server's CPU and memory.
# usage: scripts/bench/sse.sh PORT [CLIENTS] [RATE] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --bin microdash --bin microdash-loadgen >&2
PORT=$1 CLIENTS=${2:-1000} RATE=${3:-1000} SECONDS_=${4:-30}
DIR=${TMPDIR:-/tmp}/microdash_bench_sse_$PORT
rm -rf "$DIR" && mkdir -p "$DIR"
ulimit -n 65536 2>/dev/null || true
source scripts/bench/lib.sh
start_demo_server "$DIR" "$PORT" MICRODASH_WEB_DIR= MICRODASH_MQTT_LISTEN_ADDR=off
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }

./target/release/microdash-loadgen sse --url "$URL" --token "$TOKEN" --tenant demo --clients "$CLIENTS" \
  --duration-s "$SECONDS_" > "$DIR/sse.txt" &
SSE=$!
# Start the load once the streams are open (the follower prints nothing until the end).
for _ in $(seq 600); do
  [ "$(curl -s "$URL/metrics" | awk '/^microdash_streams_open /{print $2}')" = "$CLIENTS" ] && break; sleep 0.1
done
T0=$(ticks); S0=$(date +%s.%N)
./target/release/microdash-loadgen http --url "$URL" --token "$TOKEN" --rate "$RATE" --batch-size 50 \
  --concurrency 2 --agents 20 --duration-s "$SECONDS_" --probe-interval-ms 0 > "$DIR/http.txt"
T1=$(ticks); S1=$(date +%s.%N)
RSS=$(awk '/VmRSS/{print $2}' "/proc/$PID/status"); HWM=$(awk '/VmHWM/{print $2}' "/proc/$PID/status")
wait $SSE
cat "$DIR/http.txt" "$DIR/sse.txt"
awk -v t0="$T0" -v t1="$T1" -v s0="$S0" -v s1="$S1" -v hz="$(getconf CLK_TCK)" -v rss="$RSS" -v hwm="$HWM" \
  'BEGIN { printf "server: %.0f%% of one core under load; rss %.1f MiB (peak %.1f MiB)\n", 100*(t1-t0)/hz/(s1-s0), rss/1024, hwm/1024 }'
