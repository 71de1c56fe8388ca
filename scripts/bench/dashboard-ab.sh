#!/usr/bin/env bash
# A/B of the dashboard's cold first loads: the same release server serving two builds of the
# dashboard (web/dist directories), alternating, so the machine's drift hits both alike.
# Per round: the fleet overview with 200 hosts (bench/overview.mjs), the tenant page's 7-day
# view and its live view (bench/dashboard.mjs), 10 cold loads each, against four demo servers
# (overview and history, before and after).
# To build the "before" dashboard: git worktree add /tmp/web-before COMMIT &&
#   (cd /tmp/web-before && ln -s "$PWD/web/node_modules" web/node_modules && ./scripts/build-web.sh)
# usage: scripts/bench/dashboard-ab.sh BASE_PORT BEFORE_DIST AFTER_DIST [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
BASE_PORT=$1 BEFORE=$(realpath "$2") AFTER=$(realpath "$3") ROUNDS=${4:-3}
cargo build --release --bin microdash >&2
DIR=${TMPDIR:-/tmp}/microdash_bench_ab_$BASE_PORT
rm -rf "$DIR" && mkdir -p "$DIR"
source scripts/bench/lib.sh
PIDS=()
trap 'kill -TERM "${PIDS[@]}" 2>/dev/null || true' EXIT
# start NAME PORT DIST: a demo server whose URL, token and password land in $DIR/NAME/creds.
start() {
  mkdir -p "$DIR/$1"
  start_demo_server "$DIR/$1" "$2" MICRODASH_MQTT_LISTEN_ADDR=off MICRODASH_WEB_DIR="$3"
  trap 'kill -TERM "${PIDS[@]}" 2>/dev/null || true' EXIT
  PIDS+=("$PID")
  echo "$URL $TOKEN $PASSWORD" > "$DIR/$1/creds"
}
start overview-before "$BASE_PORT" "$BEFORE"
start overview-after $((BASE_PORT + 1)) "$AFTER"
start history-before $((BASE_PORT + 2)) "$BEFORE"
start history-after $((BASE_PORT + 3)) "$AFTER"
cd web
for s in history-before history-after; do
  read -r URL TOKEN PASSWORD < "$DIR/$s/creds"
  node bench/seed-history.mjs "$URL" "$TOKEN" 7 10 4 60 > /dev/null
done
for round in $(seq "$ROUNDS"); do
  for side in before after; do
    read -r URL TOKEN PASSWORD < "$DIR/overview-$side/creds"
    echo "round $round $side overview: $(RATE=1 node bench/overview.mjs "$URL" "$TOKEN" "$PASSWORD" 1 | tr -d ' \n')"
  done
  for side in before after; do
    read -r URL TOKEN PASSWORD < "$DIR/history-$side/creds"
    echo "round $round $side 7d: $(RANGE=7d node bench/dashboard.mjs "$URL" "$TOKEN" "$PASSWORD" | tr -d ' \n')"
    echo "round $round $side live: $(COLD_ONLY=1 node bench/dashboard.mjs "$URL" "$TOKEN" "$PASSWORD" | tr -d ' \n')"
  done
done
