#!/usr/bin/env bash
# Benchmark of a split deployment: API server + worker processes over Redis Streams and
# MariaDB (a throwaway database and key prefix on the local services).
# usage: scripts/bench/split.sh PORT WORKER_PROCESSES [microdash-loadgen http args...]
set -e
cd "$(dirname "$0")/../.."
cargo build --release --bin microdash --bin microdash-loadgen >&2
PORT=$1; NW=$2; shift 2
DB=md_bench_$PORT
mariadb -uroot -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB"
export MICRODASH_DATABASE_URL=mysql://root@127.0.0.1:3306/$DB MICRODASH_REDIS_URL=redis://127.0.0.1:6379/ MICRODASH_REDIS_KEY_PREFIX=bench_$PORT MICRODASH_LOG_FILTER=warn
./target/release/microdash tenant create bench >/dev/null
TOKEN=$(./target/release/microdash token create --tenant bench --scopes ingest,read | tail -1)
./target/release/microdash server --listen-addr 127.0.0.1:$PORT > ${TMPDIR:-/tmp}/microdash_split_$PORT.out 2>&1 &
SP=$!
WP=()
for i in $(seq $NW); do ./target/release/microdash worker --listen-addr 127.0.0.1:0 > ${TMPDIR:-/tmp}/microdash_split_w$i.out 2>&1 & WP+=($!); done
sleep 1
./target/release/microdash-loadgen http --url http://127.0.0.1:$PORT --token $TOKEN "$@"
ps -o rss=,time=,comm= -p $SP "${WP[@]}" | awk '{print "rss_kb=" $1 " cpu_time=" $2 " " $3}'
mariadb -uroot -N -e "SELECT COUNT(*) AS stored_rows FROM $DB.points"
kill -TERM $SP "${WP[@]}"; wait
mariadb -uroot -e "DROP DATABASE $DB"
redis-cli --scan --pattern "bench_$PORT:*" | xargs -r redis-cli del >/dev/null
