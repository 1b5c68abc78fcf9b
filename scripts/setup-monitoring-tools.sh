#!/usr/bin/env bash
# Installs Prometheus, from Debian's package: the monitoring tests start
# one on loopback to scrape the server. They fail, never skip, without it.
#
# Idempotent: does nothing when it is already in place.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

if ! dpkg -s prometheus >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

# The package starts a Prometheus service on :9090; the tests start their own.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

command -v prometheus >/dev/null || { echo "prometheus is missing after install" >&2; exit 1; }
echo "monitoring tools ready: $(prometheus --version 2>&1 | head -1)"
