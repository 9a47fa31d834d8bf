#!/usr/bin/env bash
# run_java.sh SCENARIO [ARGS...] — runs one scenario of the groups Java project (built by
# install.sh into java/target/) against $VARVE_BOOTSTRAP; uses no network.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
jar=$here/java/target/varve-groups-java.jar
if [ ! -f "$jar" ]; then
  echo "groups: $jar missing; run tests/groups/install.sh first" >&2
  exit 2
fi
exec java -Xmx512m -cp "$jar:$here/java/target/lib/*" varve.groups.Main "$@"
