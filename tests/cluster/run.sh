#!/usr/bin/env bash
# run.sh SCRIPT [ARGS...]      runs one cluster test script (tests/cluster/SCRIPT)
# run.sh -m MODULE [ARGS...]   runs a Python module (e.g. -m pytest harness_self_test.py)
# with the interop venv that tests/cluster/install.sh prepares. The tests start their own
# ZooKeeper and brokers ($VARVE_BIN, default build/varve).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
py=$repo/.cache/venv-interop/bin/python
if ! "$py" -c 'import confluent_kafka' 2>/dev/null; then
  echo "run.sh: venv $repo/.cache/venv-interop missing or incomplete; run tests/cluster/install.sh first" >&2
  exit 2
fi
script=$1; shift
case "$script" in
  -m) exec "$py" -u -m "$@" ;;
  *) exec "$py" -u "$here/$script" "$@" ;;
esac
