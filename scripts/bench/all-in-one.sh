#!/usr/bin/env bash
# Benchmark of the all-in-one server on embedded defaults (SQLite + in-process queue).
# usage: scripts/bench/all-in-one.sh PORT [microdash-loadgen http args...]
set -e
cd "$(dirname "$0")/../.."
cargo build --release --bin microdash --bin microdash-loadgen >&2
PORT=$1; shift
rm -rf ${TMPDIR:-/tmp}/microdash_bench_$PORT
MICRODASH_MQTT_LISTEN_ADDR=off ./target/release/microdash serve --demo --database-url sqlite://${TMPDIR:-/tmp}/microdash_bench_$PORT/md.db --listen-addr 127.0.0.1:$PORT > ${TMPDIR:-/tmp}/microdash_bench_$PORT.out 2>${TMPDIR:-/tmp}/microdash_bench_$PORT.err &
PID=$!
for i in $(seq 50); do grep -q 'demo token' ${TMPDIR:-/tmp}/microdash_bench_$PORT.out 2>/dev/null && break; sleep 0.1; done
TOKEN=$(grep 'demo token' ${TMPDIR:-/tmp}/microdash_bench_$PORT.out | awk '{print $NF}')
./target/release/microdash-loadgen http --url http://127.0.0.1:$PORT --token $TOKEN "$@"
ps -o rss=,time= -p $PID | awk '{print "server rss_kb=" $1 " cpu_time=" $2}'
kill -TERM $PID; wait $PID
