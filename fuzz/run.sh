#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (in build-fuzz/, configured if needed) and runs each
# for SECONDS (default 30). Exits non-zero if a target crashes, leaks, hits UB or runs out of
# memory; the reproducer is left in build-fuzz/fuzz-artifacts/.
#   fuzz/run.sh [SECONDS]
set -euo pipefail

seconds="${1:-30}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${VARVE_FUZZ_BUILD_DIR:-$root/build-fuzz}"

if [[ ! -f "$build/build.ninja" ]]; then
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DVARVE_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
# VARVE_FUZZ_TARGETS narrows the run (space-separated names); default: every fuzz target
# this configuration defines.
if [[ -n "${VARVE_FUZZ_TARGETS:-}" ]]; then
  read -r -a targets <<<"$VARVE_FUZZ_TARGETS"
else
  targets=()
  for t in fuzz_record_batch fuzz_request_decode; do
    if ninja -C "$build" -t query "$t" >/dev/null 2>&1; then
      targets+=("$t")
    else
      echo "fuzz: $t is not defined in this configuration (see the cmake output), skipping"
    fi
  done
fi
ninja -C "$build" -j2 fuzz_record_batch_seeds "${targets[@]}"

artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"

# Seed corpus for the record-batch target: valid batches of every codec.
mkdir -p "$build/corpus/fuzz_record_batch"
"$build/fuzz/fuzz_record_batch_seeds" "$build/corpus/fuzz_record_batch"

failed=0
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"
  mkdir -p "$corpus"
  echo "fuzz: running $t for ${seconds}s"
  if ! "$build/fuzz/$t" "$corpus" -max_total_time="$seconds" -max_len=65536 \
      -rss_limit_mb=2048 -timeout=25 -print_final_stats=1 \
      -artifact_prefix="$artifacts/$t-" >"$build/$t.log" 2>&1; then
    echo "fuzz: $t FAILED; last lines of $build/$t.log:"
    tail -n 40 "$build/$t.log"
    failed=1
  else
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$build/$t.log" | sed "s/^/fuzz: $t /"
  fi
done
exit "$failed"
