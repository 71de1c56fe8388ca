#!/usr/bin/env bash
# Sourced by the test script (or run on its own): servers and clients the tests start
# themselves, pinned and installed once, idempotently, in a virtualenv of their own under
# target/ so the machine's Python stays untouched:
# - aiosmtpd, the SMTP server microdash-alert's delivery tests send email to
#   (microdash-alert/tests/smtp_sink.py);
# - mcp, the official Python MCP SDK, the client bins/tests/mcp.rs drives the MCP server with
#   (bins/tests/mcp/client.py).
# The tests fail, not skip, when they are missing.
AIOSMTPD_VERSION=1.4.6
MCP_SDK_VERSION=2.3.0
TEST_SERVERS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/test-servers"
TEST_SERVERS_PYTHON="$TEST_SERVERS_DIR/python/bin/python"

if ! "$TEST_SERVERS_PYTHON" -c "import importlib.metadata as m, sys; sys.exit(m.version('aiosmtpd') != '$AIOSMTPD_VERSION' or m.version('mcp') != '$MCP_SDK_VERSION')" 2>/dev/null; then
  echo "test-servers.sh: installing aiosmtpd $AIOSMTPD_VERSION and mcp $MCP_SDK_VERSION into $TEST_SERVERS_DIR/python" >&2
  if ! python3 -m venv "$TEST_SERVERS_DIR/python" ||
    ! "$TEST_SERVERS_PYTHON" -m pip install --quiet --disable-pip-version-check \
      "aiosmtpd==$AIOSMTPD_VERSION" "mcp==$MCP_SDK_VERSION"; then
    echo "test-servers.sh: could not install aiosmtpd $AIOSMTPD_VERSION and mcp $MCP_SDK_VERSION; the email delivery and MCP tests need them" >&2
    return 1 2>/dev/null || exit 1
  fi
fi
# Where the tests find it (they default to the same path).
export MICRODASH_TEST_PYTHON="$TEST_SERVERS_PYTHON"

# The MCP Inspector's command-line mode (npm `@modelcontextprotocol/inspector`), a second MCP
# client no one here wrote, for bins/tests/mcp.rs.
INSPECTOR_VERSION=2.12.0
INSPECTOR_DIR="$TEST_SERVERS_DIR/inspector"
if [ "$(cat "$INSPECTOR_DIR/.version" 2>/dev/null)" != "$INSPECTOR_VERSION" ]; then
  echo "test-servers.sh: installing @modelcontextprotocol/inspector $INSPECTOR_VERSION into $INSPECTOR_DIR" >&2
  mkdir -p "$INSPECTOR_DIR"
  if ! (cd "$INSPECTOR_DIR" && npm install --silent --no-audit --no-fund "@modelcontextprotocol/inspector@$INSPECTOR_VERSION" >/dev/null); then
    echo "test-servers.sh: could not install @modelcontextprotocol/inspector $INSPECTOR_VERSION; the MCP tests need it" >&2
    return 1 2>/dev/null || exit 1
  fi
  echo "$INSPECTOR_VERSION" >"$INSPECTOR_DIR/.version"
fi
export MICRODASH_TEST_MCP_INSPECTOR="$INSPECTOR_DIR/node_modules/.bin/mcp-inspector"
