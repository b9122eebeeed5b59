#!/usr/bin/env bash
# The whole apm test suite, on a fresh Debian 12 machine: installs what the tests
# need (Debian packages, a Python venv with the test tools), runs the linters and
# the type checker, builds dist/apm, then runs unit, integration and browser tests.
#
#   sudo bash tests/run.sh [pytest args...]
#
# Environment: APM_TEST_VENV (default /var/tmp/apm-test-venv).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh must run as root: it installs packages and tests the installer (sudo bash tests/run.sh)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
PACKAGES="python3 python3-venv python3-dev gcc debootstrap chromium systemd util-linux procps iproute2 curl openssl nodejs acl"
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "== installing Debian packages:$missing"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

VENV="${APM_TEST_VENV:-/var/tmp/apm-test-venv}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating the test venv in $VENV"
    /usr/bin/python3 -m venv "$VENV"
fi
if ! cmp -s tests/requirements.txt "$VENV/.requirements"; then
    echo "== installing test tools into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/requirements.txt
    cp tests/requirements.txt "$VENV/.requirements"
fi
PY="$VENV/bin/python"

echo "== ruff check"
"$VENV/bin/ruff" check .
echo "== ruff format --check"
"$VENV/bin/ruff" format --check .
echo "== mypy alter"
"$VENV/bin/mypy" alter

echo "== build dist/apm"
"$PY" build.py

echo "== pytest"
export APM_PYTHON="$PY"
exec "$PY" -m pytest tests -q -p no:cacheprovider "$@"
