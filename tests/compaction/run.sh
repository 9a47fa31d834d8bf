#!/usr/bin/env bash
# run.sh TEST_FILE [PYTEST_ARGS...]
# Runs one pytest file of the compaction tests with the shared venv against a fresh broker
# from tests/lib/with_broker.sh (VARVE_OVERRIDES / VARVE_BIN are honoured).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
py=$repo/.cache/venv-interop/bin/python
if ! "$py" -c 'import confluent_kafka, pytest' 2>/dev/null; then
  echo "compaction run.sh: venv $repo/.cache/venv-interop missing; run tests/compaction/install.sh" >&2
  exit 2
fi
test_file=$1; shift
cd "$here" || exit 2
exec "$repo/tests/lib/with_broker.sh" "$py" -m pytest -q -p no:cacheprovider \
  -W ignore::DeprecationWarning "$test_file" "$@"
