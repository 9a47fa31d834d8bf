#!/usr/bin/env bash
# run.sh SCENARIO — one Java transaction scenario (ctp|abort|fencing|timeout) against
# $VARVE_BOOTSTRAP (tests/lib/with_broker.sh). Needs install.sh to have built the jar.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
jar=$here/target/varve-transactions-java.jar
if [ ! -f "$jar" ]; then
  echo "transactions: $jar missing; run tests/transactions/install.sh first" >&2
  exit 2
fi
exec java -Xmx512m -cp "$jar:$here/target/lib/*" varve.txn.Main "$@"
