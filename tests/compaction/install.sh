#!/usr/bin/env bash
# Installs what the compaction e2e test needs into the shared interop venv
# ($repo/.cache/venv-interop): confluent-kafka and pytest (the pins of tests/e2e/install.sh).
# Idempotent; returns at once when both are importable.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
venv=$repo/.cache/venv-interop
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import confluent_kafka, pytest' 2>/dev/null; then
  exit 0
fi
if ! python3 -c 'import ensurepip' 2>/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y python3-venv || { apt-get update && apt-get install -y python3-venv; }
fi
[ -x "$venv/bin/python" ] || { mkdir -p "$repo/.cache"; python3 -m venv "$venv"; }
"$venv/bin/python" -m pip install --disable-pip-version-check -q \
  confluent-kafka==2.16.1 pytest==9.2.0
echo "compaction install.sh: venv ready at $venv"
