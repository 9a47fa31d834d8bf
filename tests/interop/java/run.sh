#!/usr/bin/env bash
# run.sh SCENARIO — runs one Java interop scenario against $VARVE_BOOTSTRAP (set by
# tests/lib/with_broker.sh). Needs install.sh to have built the jar; uses no network.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
jar=$here/target/varve-interop-java.jar
if [ ! -f "$jar" ]; then
  echo "java interop: $jar missing; run tests/interop/java/install.sh first" >&2
  exit 2
fi
exec java -Xmx512m -cp "$jar:$here/target/lib/*" varve.interop.Main "$@"
