#!/usr/bin/env bash
# Installs what Palisade's tests, demo and benchmarks need on a fresh
# Debian 12 machine: Deno (pinned, from the npm package `deno`), the
# nftables library and CLI, iproute2 for namespaces, gcc for the WFP
# simulator, MinGW-w64 for the layout check against the Windows headers,
# and OpenSSL for the key interoperability tests. Run as root.
set -euo pipefail

DENO_VERSION="2.9.6"
APT_PACKAGES=(
  nftables libnftables1 iproute2 gcc libc6-dev mingw-w64 openssl
  ca-certificates procps
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null |
    grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "install: apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v npm >/dev/null; then
  echo "install: npm is needed to install Deno" >&2
  apt-get install -y -q --no-install-recommends npm
fi
if ! deno --version 2>/dev/null | grep -q "^deno ${DENO_VERSION} "; then
  echo "install: deno ${DENO_VERSION} from npm"
  npm install -g --no-fund --no-audit "deno@${DENO_VERSION}"
fi
deno --version | head -n 1

# Fetch the pinned npm dependencies recorded in deno.lock.
cd "$(dirname "$0")/.."
deno install --frozen
