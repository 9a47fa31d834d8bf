#!/usr/bin/env bash
# run.sh PYTEST_NODE [PYTEST_ARGS...]
# Picks a free port for the lossy proxy, starts a fresh broker (tests/lib/with_broker.sh) that
# advertises that port instead of its own (advertised.listeners), and runs one pytest node
# with the interop venv. The test starts the proxy on VARVE_PROXY_PORT, forwarding to
# VARVE_BOOTSTRAP, so every client connection after bootstrap goes through the proxy.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
py=$repo/.cache/venv-interop/bin/python
if ! "$py" -c 'import confluent_kafka, pytest' 2>/dev/null; then
  echo "run.sh: venv $repo/.cache/venv-interop missing or incomplete;" \
       "run tests/idempotence/install.sh first" >&2
  exit 2
fi
proxy_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export VARVE_PROXY_PORT=$proxy_port
export VARVE_OVERRIDES="advertised.listeners=PLAINTEXT://127.0.0.1:$proxy_port ${VARVE_OVERRIDES:-}"
cd "$here" || exit 2
exec "$repo/tests/lib/with_broker.sh" "$py" -m pytest -q -s -p no:cacheprovider "$@"
