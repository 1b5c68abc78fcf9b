#!/usr/bin/env bash
# Installs the route that builds wasm32-wasip1/wasip2 guests from Debian
# packages only (see guest-examples/README.md): Debian's rustc-web with its
# std source (for -Zbuild-std), lld-22 as wasm-ld, clang-22 for the C parts
# of crates the guests use (ring, the toolbox's TLS), and a wasi-libc new enough
# to carry the wasip2 build with sockets (unpacked from Debian trixie into
# /opt/wasi-libc-trixie; the system's apt configuration is not touched).
#
# Idempotent: does nothing when everything is already in place.
set -euo pipefail

need_apt=0
for pkg in rustc-web cargo-web rust-web-src lld-22 clang-22 wasi-libc; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt=1
done

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

if [ "$need_apt" = 1 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    rustc-web cargo-web rust-web-src lld-22 clang-22 wasi-libc >/dev/null
fi

if [ ! -f /opt/wasi-libc-trixie/usr/lib/wasm32-wasip2/libc.a ]; then
  TX=$(mktemp -d)
  mkdir -p "$TX/lists/partial" "$TX/cache/archives/partial"
  URI=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $URI trixie main" > "$TX/trixie.list"
  O=(-o "Dir::Etc::sourcelist=$TX/trixie.list" -o "Dir::Etc::sourceparts=-"
     -o "Dir::State::Lists=$TX/lists" -o "Dir::Cache=$TX/cache")
  $SUDO apt-get "${O[@]}" update -qq
  (cd "$TX" && $SUDO apt-get "${O[@]}" download wasi-libc >/dev/null)
  $SUDO dpkg -x "$TX"/wasi-libc_*_all.deb /opt/wasi-libc-trixie
  rm -rf "$TX"
fi

/usr/bin/rustc --version
echo "guest toolchain ready"
