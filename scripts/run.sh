#!/usr/bin/env bash
# Builds the dashboard and microdash, then starts the all-in-one server on embedded defaults: a
# SQLite file in ./data and the in-process queue; no other service is needed. It prints the URL,
# a fresh token and a dashboard password for a `demo` tenant, and the embedded MQTT endpoint
# (127.0.0.1:1884). With USE_MCP=true the server also serves MCP at /mcp (README, MCP). Extra
# arguments go to `microdash serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/build-deps.sh
./scripts/build-web.sh
cargo build --release --bin microdash
if [ "${USE_MCP:-}" = "true" ]; then
  echo "run.sh: USE_MCP=true: MCP at /mcp (bearer token); stdio: ./target/release/microdash mcp --url URL --token TOKEN" >&2
fi
exec ./target/release/microdash serve --demo "$@"
