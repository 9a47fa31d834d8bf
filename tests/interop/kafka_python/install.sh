#!/usr/bin/env bash
# kafka-python shares the interop venv ($repo/.cache/venv-interop) with the librdkafka tests;
# its packages (kafka-python and its codec libraries) are listed in
# tests/interop/librdkafka/requirements.txt.
set -euo pipefail
exec bash "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../librdkafka/install.sh"
