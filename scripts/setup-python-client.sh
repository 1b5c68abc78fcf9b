#!/usr/bin/env bash
# The official Python `kubernetes` client, in a venv the client tests use
# (target/python-client): Debian's python3 and python3-venv, then PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=33.1.0 # the client for Kubernetes 1.33, the version served
VENV=target/python-client

if ! python3 -m venv --help >/dev/null 2>&1; then
    sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
    sudo_if_needed apt-get install -y python3 python3-venv
fi
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import kubernetes, sys; sys.exit(kubernetes.__version__ != '$VERSION')" 2>/dev/null; then
    echo "python client $VERSION: ready in $VENV"
    exit 0
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "kubernetes==$VERSION"
"$VENV/bin/python" -c "import kubernetes; print('python client', kubernetes.__version__, 'in $VENV')"
