#!/usr/bin/env bash
# run.sh [ARGS...]   runs metrics_cluster_test.py with the interop venv that
# tests/cluster/install.sh prepares (through ./install.sh). The test starts its own ZooKeeper
# and 3 brokers ($VARVE_BIN, default build/varve).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
py=$repo/.cache/venv-interop/bin/python
if ! "$py" -c 'import confluent_kafka' 2>/dev/null; then
  echo "metrics_cluster run.sh: venv $repo/.cache/venv-interop missing; run tests/metrics_cluster/install.sh" >&2
  exit 2
fi
exec "$py" -u "$here/metrics_cluster_test.py" "$@"
