#!/usr/bin/env bash
# Installs what the franz-go interop tests need (idempotent; quick when up to date):
# - Go >= 1.21 on PATH or in /usr/local/go (the machine image has 1.26; a go older than
#   go.mod's 1.26 but >= 1.21 fetches the toolchain go.mod names as a Go module). Debian 12's
#   golang-go (1.19) is too old, so a missing go is an error, not an apt-get install.
# - The modules of go.mod/go.sum, cached in $repo/.cache/go, and the test binary
#   $repo/.cache/franz-go-interop that CMakeLists.txt runs.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)

if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
  export PATH=/usr/local/go/bin:$PATH
fi
command -v go >/dev/null || { echo "franz-go interop: no go toolchain (need go >= 1.21)" >&2; exit 1; }

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
