#!/usr/bin/env bash
# Installs what the kafkajs interop tests need (idempotent; quick when up to date):
# - Node.js and npm from Debian's packages if missing.
# - `npm ci` of package-lock.json into this folder's node_modules (git-ignored): kafkajs,
#   kafkajs-snappy (pure JS), @2l/kafkajs-lz4 (lz4-napi, prebuilt per platform as an npm
#   package) and @sensejs/kafkajs-zstd-support (zstd-napi, compiled by node-gyp against the
#   local Node headers: needs python3, make and g++).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
fi

stamp=$here/node_modules/.varve-installed
if [ -f "$stamp" ] && [ -z "$(find "$here/package.json" "$here/package-lock.json" -newer "$stamp" -print -quit)" ]; then
  exit 0
fi
cd "$here"
npm ci --no-audit --no-fund --loglevel=error
# Fail here, not in the test, if a codec did not install.
node --input-type=module -e "
  import k from 'kafkajs'; import '@sensejs/kafkajs-zstd-support';
  import L from '@2l/kafkajs-lz4'; import 'kafkajs-snappy';
  if (!k.CompressionCodecs[k.CompressionTypes.ZSTD]) throw new Error('zstd codec missing');
  for (const c of [new L().codec(), k.CompressionCodecs[k.CompressionTypes.ZSTD]()]) {
    const out = await c.decompress(await c.compress({ buffer: Buffer.from('varve') }));
    if (Buffer.from(out).toString() !== 'varve') throw new Error('codec round trip failed');
  }"
touch "$stamp"
echo "kafkajs interop: installed node_modules"
