#!/usr/bin/env bash
# Installs what the transaction tests need and builds them (idempotent; quick when up to date):
# - JDK 17 + Maven from Debian's packages if missing; the Java test jar (kafka-clients 4.1.2)
#   into target/ (git-ignored), Maven cache in $repo/.cache/m2;
# - confluent-kafka (librdkafka) for the Python test, in the shared interop venv
#   $repo/.cache/venv-interop (tests/idempotence/install.sh).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

if ! command -v javac >/dev/null || ! command -v mvn >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq openjdk-17-jdk-headless maven >/dev/null
fi

jar=$here/target/varve-transactions-java.jar
stamp=$here/target/.built
if ! { [ -f "$jar" ] && [ -f "$stamp" ] && [ -d "$here/target/lib" ] &&
       [ -z "$(find "$here/pom.xml" "$here/src" -newer "$stamp" -print -quit)" ]; }; then
  mkdir -p "$repo/.cache/m2"
  rm -rf "$here/target/lib"
  mvn -q -B -Dstyle.color=never -f "$here/pom.xml" -Dmaven.repo.local="$repo/.cache/m2" -DskipTests package
  touch "$stamp"
  echo "transactions: built $jar"
fi

# Python: the shared interop venv (same pins as tests/idempotence).
"$repo/tests/idempotence/install.sh"
