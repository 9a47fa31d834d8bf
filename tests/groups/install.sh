#!/usr/bin/env bash
# Installs and builds what the consumer group tests need (idempotent; quick when up to date):
# - the Python venv $repo/.cache/venv-interop with confluent-kafka (tests/interop/librdkafka's
#   install.sh owns it; called, not modified);
# - JDK 17 + Maven (Debian packages) and the Java scenarios: java/target/varve-groups-java.jar
#   + java/target/lib/*.jar, dependencies cached in $repo/.cache/m2;
# - the franz-go member $repo/.cache/groups-franz-go-member (go >= 1.21 on PATH or in
#   /usr/local/go; modules cached in $repo/.cache/go).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

bash "$repo/tests/interop/librdkafka/install.sh"

# Java.
if ! command -v javac >/dev/null || ! command -v mvn >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq openjdk-17-jdk-headless maven >/dev/null
fi
jdir=$here/java
stamp=$jdir/target/.built
if [ ! -f "$jdir/target/varve-groups-java.jar" ] || [ ! -f "$stamp" ] || [ ! -d "$jdir/target/lib" ] ||
   [ -n "$(find "$jdir/pom.xml" "$jdir/src" -newer "$stamp" -print -quit)" ]; then
  mkdir -p "$repo/.cache/m2"
  rm -rf "$jdir/target/lib"  # copy-dependencies never removes stale jars
  mvn -q -B -Dstyle.color=never -f "$jdir/pom.xml" -Dmaven.repo.local="$repo/.cache/m2" -DskipTests package
  touch "$stamp"
  echo "groups: built $jdir/target/varve-groups-java.jar"
fi

# franz-go.
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
  export PATH=/usr/local/go/bin:$PATH
fi
command -v go >/dev/null || { echo "groups: no go toolchain (need go >= 1.21)" >&2; exit 1; }
bin=$repo/.cache/groups-franz-go-member
if [ ! -x "$bin" ] || [ -n "$(find "$here/franz_go" -maxdepth 1 \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) -newer "$bin" -print -quit)" ]; then
  export GOPATH=$repo/.cache/go GOMODCACHE=$repo/.cache/go/mod GOCACHE=$repo/.cache/go/build
  export GOFLAGS=-mod=mod
  (cd "$here/franz_go" && go mod download && go build -o "$bin" .)
  echo "groups: built $bin"
fi
