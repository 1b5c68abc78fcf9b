#!/usr/bin/env bash
# Installs systemd's tools, from Debian's package: the service tests check
# dist/systemd/wasmkube.service with `systemd-analyze verify` and
# `systemd-analyze security`. They fail, never skip, without it.
#
# Idempotent: does nothing when it is already in place.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

if ! command -v systemd-analyze >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

command -v systemd-analyze >/dev/null || { echo "systemd-analyze is missing after install" >&2; exit 1; }
echo "service tools ready: $(systemd-analyze --version | head -1)"
