#!/usr/bin/env bash
# Installs what the Java interop tests need and builds them (idempotent; quick when up to date).
# - JDK 17 + Maven from Debian's packages if missing.
# - Maven dependencies cached in $repo/.cache/m2; the build goes to target/ (git-ignored):
#   target/varve-interop-java.jar + target/lib/*.jar, run offline by run.sh.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)

if ! command -v javac >/dev/null || ! command -v mvn >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq openjdk-17-jdk-headless maven >/dev/null
fi

jar=$here/target/varve-interop-java.jar
stamp=$here/target/.built
if [ -f "$jar" ] && [ -f "$stamp" ] && [ -d "$here/target/lib" ] &&
   [ -z "$(find "$here/pom.xml" "$here/src" -newer "$stamp" -print -quit)" ]; then
  exit 0
fi

mkdir -p "$repo/.cache/m2"
rm -rf "$here/target/lib"  # copy-dependencies never removes stale jars
mvn -q -B -Dstyle.color=never -f "$here/pom.xml" -Dmaven.repo.local="$repo/.cache/m2" -DskipTests package
touch "$stamp"
echo "java interop: built $jar"
