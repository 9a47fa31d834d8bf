#!/usr/bin/env bash
# install-deps.sh build|test|run
# Installs what is missing on a Debian 12 machine, idempotently:
#   build — compiler toolchain and the C/C++ libraries the broker links
#   run   — same as build
#   test  — build + what the tests need (clang for libFuzzer, client libraries for the
#           interop tests: each tests/interop/*/install.sh installs its own client)
set -euo pipefail
mode=${1:-build}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

build_pkgs=(build-essential cmake ninja-build pkg-config python3 ccache
  libasio-dev libzstd-dev liblz4-dev libsnappy-dev zlib1g-dev libssl-dev libgtest-dev nlohmann-json3-dev
  librdkafka-dev libzookeeper-mt-dev)
test_pkgs=(clang libclang-rt-14-dev python3-venv python3-pip kcat zookeeper)

missing=()
want=("${build_pkgs[@]}")
[ "$mode" = test ] && want+=("${test_pkgs[@]}")
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "$mode" = test ]; then
  # Every test folder that needs clients or tools installs them itself (idempotently).
  for s in "$root"/tests/interop/*/install.sh "$root"/tests/*/install.sh; do
    [ -f "$s" ] || continue
    echo "install-deps: ${s#$root/}"
    bash "$s"
  done
fi
