#!/usr/bin/env bash
# Install everything the tests need (redis-server, the package with its test
# extras, the compiled codec) and run the whole suite.  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    echo "tests/run.sh: installing redis-server and redis-tools (redis-cli: the Redis Cluster tests) (Debian packages)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi

# The browser test (tests/browser): Debian's chromium and thrift-compiler, node/npm for Apache Thrift's
# JavaScript library and esbuild (pinned in tests/browser/package-lock.json).
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v thrift >/dev/null 2>&1 || missing="$missing thrift-compiler"
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
if [ -n "$missing" ]; then
    echo "tests/run.sh: installing$missing (Debian packages)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
python3 -c "import aioaccess.codec as c; print('aioaccess codec:', c.IMPLEMENTATION)"
exec python3 -m pytest "$@"
