#!/usr/bin/env bash
# Builds the dashboard and microdash, then starts the all-in-one server on embedded defaults: a
# SQLite file in ./data and the in-process queue; no other service is needed. It prints the URL,
# a fresh token and a dashboard password for a `demo` tenant, and the embedded MQTT endpoint
# (127.0.0.1:1884). Extra arguments go to
# `microdash serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/build-deps.sh
./scripts/build-web.sh
cargo build --release --bin microdash
exec ./target/release/microdash serve --demo "$@"
