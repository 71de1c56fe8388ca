#!/usr/bin/env bash
# Agent footprint: stripped size of the release binary (profile `agent`), and resident memory
# and CPU while it publishes every INTERVAL seconds to the MQTT broker at URL for SECONDS.
# usage: scripts/bench/agent.sh [URL] [INTERVAL_S] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/build-deps.sh
URL=${1:-tcp://127.0.0.1:1883} INTERVAL=${2:-10} SECONDS_=${3:-120}
cargo build --profile agent -p microdash-agent >&2
BIN=target/agent/microdash-agent
echo "binary: $(stat -c %s $BIN) bytes ($(file -b $BIN | cut -d, -f1-2))"
$BIN --url "$URL" --tenant bench --agent-id bench-host --interval-s "$INTERVAL" 2>/dev/null &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
sleep 2
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
T0=$(ticks); S0=$(date +%s.%N)
sleep "$SECONDS_"
T1=$(ticks); S1=$(date +%s.%N)
awk -v t0="$T0" -v t1="$T1" -v s0="$S0" -v s1="$S1" -v hz="$(getconf CLK_TCK)" \
  -v rss="$(awk '/VmRSS/{print $2}' /proc/$PID/status)" -v hwm="$(awk '/VmHWM/{print $2}' /proc/$PID/status)" \
  'BEGIN { printf "cpu: %.3f%% of one core over %.0f s; rss %.1f MiB (peak %.1f MiB)\n", 100*(t1-t0)/hz/(s1-s0), s1-s0, rss/1024, hwm/1024 }'
