#!/usr/bin/env bash
# run.sh [--no-broker] TEST_FILE [PYTEST_ARGS...]
# Runs one pytest file of the e2e tests with the shared venv. By default against a fresh broker
# from tests/lib/with_broker.sh (VARVE_OVERRIDES / VARVE_BIN are honoured); with --no-broker
# the test starts brokers itself (configuration tests).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
py=$repo/.cache/venv-interop/bin/python
if ! "$py" -c 'import confluent_kafka, pytest' 2>/dev/null; then
  echo "e2e run.sh: venv $repo/.cache/venv-interop missing; run tests/e2e/install.sh" >&2
  exit 2
fi
with_broker=("$repo/tests/lib/with_broker.sh")
if [ "${1:-}" = --no-broker ]; then with_broker=(); shift; fi
test_file=$1; shift
cd "$here" || exit 2
exec "${with_broker[@]}" "$py" -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning \
  "$test_file" "$@"
