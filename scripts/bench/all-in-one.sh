#!/usr/bin/env bash
# Benchmark of the all-in-one server on embedded defaults (SQLite + in-process queue).
# usage: scripts/bench/all-in-one.sh PORT [microdash-loadgen http args...]
set -e
cd "$(dirname "$0")/../.."
cargo build --release --bin microdash --bin microdash-loadgen >&2
PORT=$1; shift
DIR=${TMPDIR:-/tmp}/microdash_bench_$PORT
rm -rf "$DIR" && mkdir -p "$DIR"
source scripts/bench/lib.sh
start_demo_server "$DIR" "$PORT" MICRODASH_MQTT_LISTEN_ADDR=off
./target/release/microdash-loadgen http --url "$URL" --token "$TOKEN" "$@"
ps -o rss=,time= -p $PID | awk '{print "server rss_kb=" $1 " cpu_time=" $2}'
