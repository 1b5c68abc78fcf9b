#!/usr/bin/env bash
# Builds the binary to ship (README, "Building for a device") and fails
# when it is larger than an edge device is promised: 30 MB. Prints the
# binary's path as its last line.
#
#   scripts/build-dist.sh
#
# A rebuild of every crate at the dist profile (fat LTO, one codegen unit)
# takes 6 to 9 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=30000000

cargo build --locked --profile dist -p wasmkube --bin wasmkube >&2
binary=target/dist/wasmkube
size=$(stat -c %s "$binary")
echo "$binary: $size bytes (at most $limit)" >&2
if [ "$size" -gt "$limit" ]; then
  echo "the binary to ship is $((size - limit)) bytes over 30 MB: see README, \"Building for a device\"" >&2
  exit 1
fi
echo "$binary"
