#!/usr/bin/env bash
# check.sh VARVE_BIN BUILD_DIR: runs bench/run.sh --smoke and checks that each workload row
# of the table holds a number for Varve (a workload that fails makes run.sh exit non-zero).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$2/smoke-table.txt
VARVE_BIN=$1 BENCH_BUILD=$2 "$repo/bench/run.sh" --smoke | tee "$out"
status=0
for row in "W1 produce acks=1, records/s" "W1 produce acks=1, MB/s" "W1 with 2 producer clients, MB/s" \
           "W2 produce acks=all, 3 brokers RF=3, records/s" "W2 produce acks=all, 3 brokers RF=3, MB/s" \
           "W2 produce send->ack p99" "W2 peak RSS" "W3 end-to-end p99 ms" "W3 end-to-end max ms" \
           "W4 consume MB/s" "W5 RSS idle" "W5 peak RSS" "W6 start" \
           "W7 create topic of" "W7 produce over" "W7 peak RSS"; do
  value=$(grep -F "| $row" "$out" | head -1 | awk -F'|' '{ gsub(/ /, "", $3); print $3 }')
  if ! [[ "$value" =~ ^[0-9]+(\.[0-9]+)?$ ]] || [ "$value" = 0 ] || [ "$value" = 0.0 ]; then
    echo "FAIL: row '$row' has no measurement (got '$value')" >&2
    status=1
  fi
done
# A count that may be 0: the event-loop stalls read from Varve's /metrics around W3.
value=$(grep -F "| W3 event-loop stalls" "$out" | head -1 | awk -F'|' '{ gsub(/ /, "", $3); print $3 }')
if ! [[ "$value" =~ ^[0-9]+$ ]]; then
  echo "FAIL: row 'W3 event-loop stalls' has no count (got '$value')" >&2
  status=1
fi
[ $status = 0 ] && echo "bench smoke: table complete"
exit $status
