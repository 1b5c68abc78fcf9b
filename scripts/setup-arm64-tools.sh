#!/usr/bin/env bash
# Installs the route that cross-builds wasmkube for 64-bit ARM boards
# (aarch64-unknown-linux-gnu) and runs it under emulation, from Debian
# packages only (rustup's targets are not reachable here):
#
# - Debian's rustc-web/cargo-web with the aarch64 standard library
#   (libstd-rust-web-dev:arm64, Multi-Arch: same, so arm64 is added as a
#   foreign architecture);
# - gcc-aarch64-linux-gnu and libc6-dev-arm64-cross to link, and to build
#   the C parts of crates (ring);
# - qemu-user, whose qemu-aarch64 runs the binary on this machine, with
#   libc6:arm64 as its C library. Run it as `qemu-aarch64 ./wasmkube`, with
#   no `-L /usr/aarch64-linux-gnu`: that prefix pairs the cross package's
#   dynamic loader with libc6:arm64's libc, and the first thread the
#   program starts then hangs in pthread_create.
#
# Idempotent: does nothing when everything is already in place.
set -euo pipefail

packages=(rustc-web cargo-web libstd-rust-web-dev:arm64 libc6:arm64
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need_apt=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
  need_apt=1
fi
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt=1
done

if [ "$need_apt" = 1 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${packages[@]}" >/dev/null
fi

for tool in /usr/bin/cargo /usr/bin/rustc aarch64-linux-gnu-gcc qemu-aarch64; do
  command -v "$tool" >/dev/null || { echo "$tool is missing after install" >&2; exit 1; }
done
[ -d /usr/lib/rustlib/aarch64-unknown-linux-gnu/lib ] || {
  echo "the aarch64 standard library is missing after install" >&2; exit 1; }
echo "arm64 tools ready: $(/usr/bin/rustc --version), $(qemu-aarch64 --version | head -1)"
