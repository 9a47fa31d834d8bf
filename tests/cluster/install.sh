#!/usr/bin/env bash
# Installs what the cluster fault tests need (idempotent; quick when up to date):
# - Debian: zookeeper (ZooKeeper server, run through scripts/cluster.sh), JDK 17 + Maven,
#   python3-venv.
# - confluent-kafka in the shared venv $repo/.cache/venv-interop (requirements.txt).
# - The Java verifier: java/target/varve-cluster-java.jar + java/target/lib/*.jar, built with
#   Maven (dependencies cached in $repo/.cache/m2).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
venv=$repo/.cache/venv-interop
req=$here/requirements.txt

missing=()
for p in zookeeper openjdk-17-jdk-headless maven python3-venv; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

have_all() {
  "$venv/bin/python" - "$req" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if line:
        name, want = line.split("==")
        if version(name) != want:
            sys.exit(1)
PY
}
if ! { [ -x "$venv/bin/python" ] && have_all; }; then
  mkdir -p "$repo/.cache"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
  echo "cluster install: confluent-kafka ready in $venv"
fi

java=$here/java
jar=$java/target/varve-cluster-java.jar
stamp=$java/target/.built
if [ -f "$jar" ] && [ -f "$stamp" ] && [ -d "$java/target/lib" ] &&
   [ -z "$(find "$java/pom.xml" "$java/src" -newer "$stamp" -print -quit)" ]; then
  exit 0
fi
mkdir -p "$repo/.cache/m2"
rm -rf "$java/target/lib"  # copy-dependencies never removes stale jars
mvn -q -B -Dstyle.color=never -f "$java/pom.xml" -Dmaven.repo.local="$repo/.cache/m2" -DskipTests package
touch "$stamp"
echo "cluster install: built $jar"
