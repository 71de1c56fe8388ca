# Shared by the bench scripts (sourced): start the all-in-one server with a `demo` tenant on a
# SQLite file in DIR, wait for it, and read the demo credentials.
# usage: start_demo_server DIR PORT [VAR=value ...]   (extra environment for the server)
# MICRODASH_BIN names another server binary (for example an older build, to compare with);
# BENCH_DATABASE_URL another database than DIR's SQLite file.
# Sets PID, URL, TOKEN and PASSWORD; the server (and MOSQUITTO, if a script set it) is stopped
# when the script exits.
start_demo_server() {
  local dir=$1 port=$2
  shift 2
  env "$@" "${MICRODASH_BIN:-./target/release/microdash}" serve --demo --database-url "${BENCH_DATABASE_URL:-sqlite://$dir/md.db}" \
    --listen-addr "127.0.0.1:$port" > "$dir/out" 2> "$dir/err" &
  PID=$!
  trap 'kill -TERM $PID ${MOSQUITTO:-} 2>/dev/null || true' EXIT
  for _ in $(seq 100); do grep -q 'sign in as demo' "$dir/out" 2>/dev/null && break; sleep 0.1; done
  TOKEN=$(grep 'demo token' "$dir/out" | awk '{print $NF}')
  PASSWORD=$(grep 'sign in as demo' "$dir/out" | awk '{print $NF}')
  URL=http://127.0.0.1:$port
  if [ -z "$TOKEN" ]; then
    echo "the server did not start; see $dir/err" >&2
    exit 1
  fi
}
