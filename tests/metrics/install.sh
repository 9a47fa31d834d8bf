#!/usr/bin/env bash
# Installs what the metrics tests need: the shared interop venv (tests/e2e/install.sh) and
# promtool, taken from Debian's `prometheus` package without installing it (the package
# would also install and start a Prometheus server): the .deb is downloaded with
# `apt-get download` and unpacked into $repo/.cache/prometheus/root. Idempotent. Without
# promtool, test_deploy_files skips its rule/format checks (and says so).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bash "$repo/tests/e2e/install.sh"
dest=$repo/.cache/prometheus
if [ -x "$dest/root/usr/bin/promtool" ] || command -v promtool >/dev/null; then
  exit 0
fi
mkdir -p "$dest"
cd "$dest"
if ! ls prometheus_*.deb >/dev/null 2>&1; then
  apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus; } ||
    { echo "metrics install.sh: cannot download Debian's prometheus package; promtool checks will be skipped" >&2; exit 0; }
fi
dpkg-deb -x prometheus_*.deb root
rm -f prometheus_*.deb
echo "metrics install.sh: promtool at $dest/root/usr/bin/promtool"
