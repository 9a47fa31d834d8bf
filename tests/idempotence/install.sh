#!/usr/bin/env bash
# Installs what the idempotence tests need into the shared interop venv
# $repo/.cache/venv-interop (created if missing). Idempotent; a no-op when the venv already
# has the pinned packages of requirements.txt.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
req=$here/requirements.txt
venv=$repo/.cache/venv-interop

have_all() {
  "$venv/bin/python" - "$req" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, want = line.split("==")
    if version(name) != want:
        sys.exit(1)
PY
}

if [ -x "$venv/bin/python" ] && have_all; then
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
echo "install.sh: idempotence test packages ready in $venv"
