#!/usr/bin/env bash
# The compaction tests use the same venv (confluent-kafka + pytest) as the e2e tests.
set -euo pipefail
exec bash "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../e2e/install.sh"
