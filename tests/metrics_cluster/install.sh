#!/usr/bin/env bash
# Installs what metrics_cluster_test.py needs: exactly what the cluster fault tests need
# (ZooKeeper, the interop venv with confluent-kafka), so it delegates to tests/cluster/install.sh
# (idempotent, quick when up to date).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec "$here/../cluster/install.sh"
