#!/usr/bin/env bash
# Installs what tests/kafka_tools needs, idempotently (quick when present):
#   - Apache Kafka 4.x jars from Maven Central (bench/fetch-kafka.sh; it also installs a JDK
#     and Maven from Debian when missing) for the bin/ wrappers of Kafka's tools;
#   - kcat from Debian.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bash "$repo/bench/fetch-kafka.sh" >/dev/null
if ! command -v kcat >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq kcat >/dev/null
fi
