#!/usr/bin/env bash
# Sourced by the test script (or run on its own): servers the tests start themselves, pinned
# and installed once, idempotently. Today: aiosmtpd, the SMTP server microdash-alert's
# delivery tests send email to (microdash-alert/tests/smtp_sink.py), in a virtualenv of its
# own under target/ so the machine's Python stays untouched. The tests fail, not skip, when
# it is missing.
AIOSMTPD_VERSION=1.4.6
TEST_SERVERS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/test-servers"
TEST_SERVERS_PYTHON="$TEST_SERVERS_DIR/python/bin/python"

if ! "$TEST_SERVERS_PYTHON" -c "import importlib.metadata as m, sys; sys.exit(m.version('aiosmtpd') != '$AIOSMTPD_VERSION')" 2>/dev/null; then
  echo "test-servers.sh: installing aiosmtpd $AIOSMTPD_VERSION into $TEST_SERVERS_DIR/python" >&2
  if ! python3 -m venv "$TEST_SERVERS_DIR/python" ||
    ! "$TEST_SERVERS_PYTHON" -m pip install --quiet --disable-pip-version-check "aiosmtpd==$AIOSMTPD_VERSION"; then
    echo "test-servers.sh: could not install aiosmtpd $AIOSMTPD_VERSION; the email delivery tests need it" >&2
    return 1 2>/dev/null || exit 1
  fi
fi
# Where the tests find it (they default to the same path).
export MICRODASH_TEST_PYTHON="$TEST_SERVERS_PYTHON"
