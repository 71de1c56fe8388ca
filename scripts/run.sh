#!/usr/bin/env bash
# Builds microdash and starts the all-in-one server on embedded defaults: a SQLite file in
# ./data and the in-process queue; no other service is needed. It prints the URL and a fresh
# token for a `demo` tenant. Extra arguments go to `microdash serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin microdash
exec ./target/release/microdash serve --demo "$@"
