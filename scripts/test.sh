#!/usr/bin/env bash
# Runs the whole test suite: unit tests, integration tests against real MariaDB, Redis and
# Mosquitto, and
# the dashboard's browser scenarios.
# Services that are down are started with the machine's own commands; a service that still
# cannot be reached fails the run (tests never skip a missing service).
set -euo pipefail
cd "$(dirname "$0")/.."

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ensure_service() {
  local name=$1 port=$2; shift 2
  if port_open "$port"; then return 0; fi
  echo "test.sh: $name is not listening on $port, starting it" >&2
  "$@" >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do port_open "$port" && return 0; sleep 0.5; done
  echo "test.sh: $name is unreachable on 127.0.0.1:$port; the integration tests need it" >&2
  exit 1
}

source scripts/build-deps.sh
source scripts/test-servers.sh

ensure_service MariaDB 3306 start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
ensure_service Redis 6379 redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
  --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
ensure_service Mosquitto 1883 mosquitto -d -c /etc/mosquitto/mosquitto.conf

# The example programs, which bins/tests/examples.rs runs against the real server (and the
# embedded one by itself): `cargo test --all-targets` compiles them too, but only `cargo build`
# puts them at target/debug/examples/NAME, where the test finds them.
cargo build -p microdash-client -p microdash-ingest --examples --all-features
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc
# The API docs, with every rustdoc warning (a broken or private link, say) an error.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace

# The dashboard, built for the browser (which also proves the architecture invariant that
# microdash-core has no IO and compiles to wasm32), then its Gherkin scenarios in Debian's
# headless Chromium against the real binary.
./scripts/build-web.sh
cargo build --bin microdash
if ! command -v chromium >/dev/null; then
  echo "test.sh: installing Debian's Chromium for the browser tests" >&2
  apt-get update >/dev/null && apt-get install -y chromium >/dev/null
fi
(cd web && npx bddgen && npx playwright test)
