#!/usr/bin/env bash
# Installs what the franz-go interop tests need (idempotent; quick when up to date):
# - Go from Debian's packages if no go is on PATH (go.mod needs go 1.26; an older go fetches
#   the toolchain it names through the module proxy).
# - The modules of go.mod/go.sum, cached in $repo/.cache/go, and the test binary
#   $repo/.cache/franz-go-interop that CMakeLists.txt runs.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)

if ! command -v go >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq golang-go >/dev/null
fi

bin=$repo/.cache/franz-go-interop
if [ -x "$bin" ] && [ -z "$(find "$here" -maxdepth 1 \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) -newer "$bin" -print -quit)" ]; then
  exit 0
fi

export GOPATH=$repo/.cache/go
export GOMODCACHE=$repo/.cache/go/mod
export GOCACHE=$repo/.cache/go/build
export GOFLAGS=-mod=mod
cd "$here"
go mod download
go build -o "$bin" ./...
echo "franz-go interop: built $bin"
