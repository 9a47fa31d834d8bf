#!/usr/bin/env bash
# run.sh TEST_FILE [PYTEST_ARGS...]
# Runs one pytest file of the metrics tests with the shared venv against a fresh broker from
# tests/lib/with_broker.sh (VARVE_OVERRIDES / VARVE_BIN are honoured). PROMTOOL is exported
# when install.sh extracted it (or one is on PATH).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
py=$repo/.cache/venv-interop/bin/python
if ! "$py" -c 'import confluent_kafka, pytest' 2>/dev/null; then
  echo "metrics run.sh: venv $repo/.cache/venv-interop missing; run tests/metrics/install.sh" >&2
  exit 2
fi
if [ -z "${PROMTOOL:-}" ]; then
  if [ -x "$repo/.cache/prometheus/root/usr/bin/promtool" ]; then
    export PROMTOOL=$repo/.cache/prometheus/root/usr/bin/promtool
  elif command -v promtool >/dev/null; then
    export PROMTOOL=$(command -v promtool)
  fi
fi
export VARVE_REPO=$repo
test_file=$1; shift
cd "$here" || exit 2
exec "$repo/tests/lib/with_broker.sh" "$py" -m pytest -q -p no:cacheprovider \
  -W ignore::DeprecationWarning "$test_file" "$@"
