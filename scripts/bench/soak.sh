#!/usr/bin/env bash
# Soak of the all-in-one server (SQLite, the queue's journal, the embedded MQTT endpoint on
# PORT+1): microdash-loadgen soak runs HTTP pushes, MQTT publishes, live streams and history
# queries together, then reads every point back and reports sent, acknowledged, stored and
# missing points. The server's RSS is printed every minute, and its RSS, CPU time and data
# size at the end.
# usage: scripts/bench/soak.sh PORT [microdash-loadgen soak args, e.g. --duration-s 600]
set -e
cd "$(dirname "$0")/../.."
cargo build --release --bin microdash --bin microdash-loadgen >&2
source scripts/bench/lib.sh
PORT=$1; shift
DIR=$(mktemp -d)
start_demo_server "$DIR" "$PORT" MICRODASH_MQTT_LISTEN_ADDR="127.0.0.1:$((PORT + 1))"
(
  while kill -0 "$PID" 2>/dev/null; do
    ps -o rss= -p "$PID" | awk -v t="$SECONDS" '{print "t=" t " s: server rss_kb=" $1}'
    sleep 60
  done
) >&2 &
STATUS=0
./target/release/microdash-loadgen soak --url "$URL" --token "$TOKEN" --tenant demo \
  --broker "tcp://127.0.0.1:$((PORT + 1))" "$@" || STATUS=$?
ps -o rss=,time= -p "$PID" | awk '{print "server rss_kb=" $1 " cpu_time=" $2}'
du -sh "$DIR" | awk '{print "data (database and journal): " $1}'
kill -TERM "$PID"; wait "$PID" || true
rm -rf "$DIR"
exit $STATUS
