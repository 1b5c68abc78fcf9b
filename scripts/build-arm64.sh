#!/usr/bin/env bash
# Cross-builds the wasmkube binary for 64-bit ARM Linux boards
# (aarch64-unknown-linux-gnu) with Debian's Rust (scripts/setup-arm64-tools.sh,
# run first), and prints the binary's path as its last line.
#
#   scripts/build-arm64.sh [PROFILE]     # default: dist, the binary to ship
#
# PROFILE is a cargo profile: `dist` (size-optimised, fat LTO; the slowest),
# `release`, or `cross-test`, the unoptimised build the ARM test runs under
# qemu-aarch64 (about 11 minutes on 2 cores, against 32 for `dev`).
# The build has its own target directory, target/cross: Debian's compiler
# is not rustup's, so nothing can be shared with target/debug.
#
# Run the result on this machine with `qemu-aarch64 PATH …`, or copy it to
# the board.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-dist}

scripts/setup-arm64-tools.sh >&2

target=aarch64-unknown-linux-gnu
out="$PWD/target/cross"
# Debian's cargo and rustc in a clean environment: whatever rustup, or a
# cargo running this script (as the ARM test does), put in it would
# otherwise reach the build and make it start over.
# (A proxy the network needs is kept.)
keep=()
for var in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  [ -n "${!var:-}" ] && keep+=("$var=${!var}")
done
env -i "${keep[@]}" PATH=/usr/bin:/bin HOME="$HOME" CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" \
  CARGO_TARGET_DIR="$out" RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
  CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
  AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
  /usr/bin/cargo build --locked --target "$target" -p wasmkube --bin wasmkube \
  --profile "$profile" >&2

dir=$profile
[ "$profile" = dev ] && dir=debug
echo "$out/$target/$dir/wasmkube"
