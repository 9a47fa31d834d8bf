#!/usr/bin/env bash
# Fetches Apache Kafka (broker + tools) as jars from Maven Central into
# $repo/.cache/kafka-<version>/libs/ and prints that folder. Idempotent: quick when present.
# Usage: bench/fetch-kafka.sh [version]   (default: the version tests/interop/java uses)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
version=${1:-${KAFKA_VERSION:-4.1.2}}
dest=$repo/.cache/kafka-$version

if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq openjdk-17-jdk-headless maven >/dev/null
fi

if [ -f "$dest/.complete" ] && [ -n "$(ls "$dest/libs"/kafka_2.13-*.jar 2>/dev/null)" ]; then
  echo "$dest"
  exit 0
fi

mkdir -p "$repo/.cache/m2"
rm -rf "$dest"
mkdir -p "$dest/libs"
mvn -q -B -Dstyle.color=never -f "$here/kafka-dist/pom.xml" \
  -Dmaven.repo.local="$repo/.cache/m2" -Dkafka.version="$version" \
  dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dest/libs" >&2
touch "$dest/.complete"
echo "$dest"
