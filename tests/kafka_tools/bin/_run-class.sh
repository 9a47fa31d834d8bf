#!/usr/bin/env bash
# _run-class.sh MAIN_CLASS [ARGS...]
# Runs one of Apache Kafka's command-line tools (a main class from the Kafka 4.x jars that
# bench/fetch-kafka.sh puts in $repo/.cache/kafka-<version>/libs) with ARGS unchanged, the way
# Kafka's bin/kafka-run-class.sh would. Kafka's own log output goes to stderr at WARN so that
# stdout carries only the tool's answer.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
libs=${KAFKA_LIBS:-$repo/.cache/kafka-${KAFKA_VERSION:-4.1.2}/libs}
if [ ! -f "$libs/../.complete" ]; then
  echo "kafka tools: $libs missing; run tests/kafka_tools/install.sh" >&2
  exit 2
fi
main=$1; shift
exec java -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
  -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -Dorg.slf4j.simpleLogger.logFile=System.err \
  -cp "$libs/*" "$main" "$@"
