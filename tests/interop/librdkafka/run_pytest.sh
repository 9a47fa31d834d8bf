#!/usr/bin/env bash
# run_pytest.sh TEST_FILE [PYTEST_ARGS...]
# Runs one pytest file of the Python interop tests with the venv made by install.sh, against a
# fresh broker started by tests/lib/with_broker.sh (which exports VARVE_BOOTSTRAP etc.).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
py=$repo/.cache/venv-interop/bin/python
if ! "$py" -c 'import confluent_kafka, kafka, pytest' 2>/dev/null; then
  echo "run_pytest: venv $repo/.cache/venv-interop missing or incomplete;" \
       "run tests/interop/librdkafka/install.sh first" >&2
  exit 2
fi
test_file=$1; shift
cd "$(dirname "$test_file")" || exit 2
exec "$repo/tests/lib/with_broker.sh" "$py" -m pytest -q -s -p no:cacheprovider -W ignore::DeprecationWarning \
  "$(basename "$test_file")" "$@"
