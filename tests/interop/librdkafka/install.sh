#!/usr/bin/env bash
# Installs the Python venv used by the librdkafka (confluent-kafka) and kafka-python interop
# tests: $repo/.cache/venv-interop. Idempotent; a no-op when the requirements are unchanged.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
req=$here/requirements.txt
venv=$repo/.cache/venv-interop
stamp=$venv/.requirements.sha256

want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] \
   && "$venv/bin/python" -c 'import confluent_kafka, kafka, pytest' 2>/dev/null; then
  exit 0
fi

if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y python3-venv || { apt-get update && apt-get install -y python3-venv; }
fi
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$repo/.cache"
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
echo "$want" > "$stamp"
echo "install.sh: venv ready at $venv"
