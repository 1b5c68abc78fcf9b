#!/usr/bin/env bash
# Installs the registry tools the image tests drive, from Debian packages:
# `docker-registry` (CNCF Distribution, the registry the tests start on
# loopback), `umoci` (builds OCI image layouts), `skopeo` (copies images
# between layouts and registries) and `apache2-utils` (htpasswd, for the
# registry that demands a login). The tests fail, never skip, without them.
#
# Idempotent: does nothing when everything is already in place.
set -euo pipefail

pkgs=(docker-registry umoci skopeo apache2-utils)
missing=()
for pkg in "${pkgs[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

if [ "${#missing[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The package starts a registry service on :5000; the tests start their own.
if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
  $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

for tool in docker-registry umoci skopeo htpasswd; do
  command -v "$tool" >/dev/null || { echo "$tool is missing after install" >&2; exit 1; }
done
echo "registry tools ready: $(docker-registry --version 2>&1 | head -1); umoci $(umoci --version | awk '{print $3}'); $(skopeo --version)"
