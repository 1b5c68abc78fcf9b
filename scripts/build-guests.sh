#!/usr/bin/env bash
# Builds the example guests in guest-examples/ and copies them to
# guest-examples/dist/, which the wasmkube binary embeds.
#
# Route: a rustup toolchain with the wasm32-wasip2 and wasm32-wasip1 targets
# if one is installed; otherwise the Debian packages installed by
# scripts/setup-guest-toolchain.sh (see guest-examples/README.md).
set -euo pipefail

cd "$(dirname "$0")/../guest-examples"
DIST=dist
mkdir -p "$DIST"

if command -v rustup >/dev/null 2>&1 \
  && rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 \
  && rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  echo "build-guests: rustup route ($(rustc --version))"
  CARGO=(cargo)
elif [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ] && [ -d /opt/wasi-libc-trixie/usr/lib/wasm32-wasip2 ]; then
  echo "build-guests: Debian route ($(/usr/bin/rustc --version))"
  export RUSTC_BOOTSTRAP=1
  # ring (the toolbox's TLS) compiles C for the guest: clang-22 against
  # the wasip2 wasi-libc.
  export CC_wasm32_wasip2=/usr/lib/llvm-22/bin/clang
  export AR_wasm32_wasip2=/usr/lib/llvm-22/bin/llvm-ar
  export CFLAGS_wasm32_wasip2="--sysroot=/opt/wasi-libc-trixie/usr -I/opt/wasi-libc-trixie/usr/include/wasm32-wasip2"
  CARGO=(/usr/bin/cargo --config debian-route.toml)
else
  echo "build-guests: no wasm toolchain found; run scripts/setup-guest-toolchain.sh" >&2
  exit 1
fi

P2=target/wasm32-wasip2/release
P1=target/wasm32-wasip1/release

"${CARGO[@]}" build --release --target wasm32-wasip2 -p toolbox -p http-server -p http-hello -p echo-hostname -p ambassador
cp "$P2/toolbox.wasm" "$DIST/toolbox.wasm"
cp "$P2/ambassador.wasm" "$DIST/ambassador.wasm"
cp "$P2/http-server.wasm" "$DIST/http-server.wasm"
cp "$P2/http_hello.wasm" "$DIST/http-hello.wasm"
cp "$P2/echo-hostname.wasm" "$DIST/echo-hostname-1.0.1.wasm"

"${CARGO[@]}" build --release --target wasm32-wasip2 -p echo-hostname --features v1_0_2
cp "$P2/echo-hostname.wasm" "$DIST/echo-hostname-1.0.2.wasm"

"${CARGO[@]}" build --release --target wasm32-wasip1 -p stress
cp "$P1/stress.wasm" "$DIST/stress.wasm"

ls -l "$DIST"
