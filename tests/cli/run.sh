#!/usr/bin/env bash
# run.sh VARVE_BINARY TEST_FILE [PYTEST_ARGS...]
# Runs one pytest file of the CLI tests against a fresh broker (tests/lib/with_broker.sh),
# using VARVE_BINARY both as the broker and as the CLI under test.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
py=$repo/.cache/venv-interop/bin/python
if ! "$py" -c 'import confluent_kafka, pytest' 2>/dev/null; then
  echo "cli run.sh: venv $repo/.cache/venv-interop missing; run tests/e2e/install.sh" >&2
  exit 2
fi
export VARVE_BIN=$1; shift
test_file=$1; shift
cd "$here" || exit 2
exec "$repo/tests/lib/with_broker.sh" "$py" -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning \
  "$test_file" "$@"
