#!/usr/bin/env bash
# make bench: Varve against Apache Kafka 4.x on this machine, in one run, with one client.
#
#   bench/run.sh [--quick|--full|--smoke] [--only w2|w7]  (default --quick, every workload)
#
# --quick  every workload, small sizes: finishes in well under 10 minutes on 2 cores
#          (W4 reads the ~1.4 GiB topic W1 wrote, not 2 GiB).
# --full   W1 writes 2.5 GiB, W4 reads it warm and, when /proc/sys/vm/drop_caches is
#          writable, cold; W3 runs 60 s.
# --smoke  seconds-long workloads against Varve only: checks that the harness works
#          (W7 with 100 partitions and 100 connections for 3 s; W2 on a 3-broker cluster).
# --only w2|w7  just that workload (both brokers, or Varve only with --smoke), no machine
#          limits.
#
# For each broker in turn (fresh data directory under $BENCH_TMP, loopback ports, RF=1,
# 6 partitions, 1 GiB segments, default flush policy = leave it to the OS, 168 h retention)
# it measures W6 (start -> first acknowledged produce), W5 (RSS idle, peak RSS after W1),
# W1 (produce max throughput; once with one producer client, once with two that share the
# records, since one librdkafka client's threads cap the rate at these speeds),
# W4 (consume max throughput), W3 (end-to-end latency at a
# fixed rate, acks=all) and runs Kafka's own ProducerPerformance / ConsumerPerformance as a
# cross-check. The machine's loopback and sequential-write bandwidth are measured first.
# W7 (scale) then runs on a freshly started broker of each kind: create a topic of 1,000
# partitions (timed), hold 1,000 client connections (4 librdkafka producers + 996 raw
# connections that handshake and refresh metadata, see `varve-loadgen scale`), sample the
# broker's RSS, produce at full speed over all 1,000 partitions for a fixed time.
# W2 (replicated produce) runs on 3-broker clusters started for it: Varve through
# scripts/cluster.sh (ZooKeeper + 3 brokers), Kafka in KRaft mode as one combined
# controller+broker node plus two brokers; same settings as above except RF=3 and
# min.insync.replicas=2; the topic has 6 partitions, the load generator produces W1's record
# count with acks=all.
# Prints one table (Varve, Kafka, Varve/Kafka); every log lands in $BENCH_BUILD/bench-last/.
#
# Environment: BENCH_BUILD (default build-bench: the load generator, logs of the last run),
# VARVE_BIN (default: $BENCH_BUILD/varve, built here with RelWithDebInfo like
# `make build`), KAFKA_VERSION (default 4.1.2), BENCH_TMP (default: a new /tmp folder,
# removed at the end unless BENCH_KEEP=1).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
mode=quick
only=
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) mode=quick ;;
    --full) mode=full ;;
    --smoke) mode=smoke ;;
    --only) case "${2:-}" in w2|w7) only=$2 ;; *) echo "bench/run.sh: --only takes w2 or w7" >&2; exit 2 ;; esac
            shift ;;
    *) echo "usage: bench/run.sh [--quick|--full|--smoke] [--only w2|w7]" >&2; exit 2 ;;
  esac
  shift
done

case $mode in
  smoke) w1_records=20000; w3_rate=200; w3_seconds=2; w3_warmup=1; xp_records=0; loop_s=1; dd_mib=64 ;;
  quick) w1_records=1500000; w3_rate=1000; w3_seconds=15; w3_warmup=2; xp_records=300000; loop_s=3; dd_mib=1024 ;;
  full) w1_records=2600000; w3_rate=1000; w3_seconds=60; w3_warmup=5; xp_records=1000000; loop_s=5; dd_mib=4096 ;;
esac
# W7: partitions of its topic, client connections held (of which w7_producers produce),
# seconds of produce.
case $mode in
  smoke) w7_partitions=100; w7_connections=100; w7_producers=4; w7_seconds=3 ;;
  quick) w7_partitions=1000; w7_connections=1000; w7_producers=4; w7_seconds=20 ;;
  full) w7_partitions=1000; w7_connections=1000; w7_producers=4; w7_seconds=60 ;;
esac
# Each raw W7 connection refreshes metadata once per w7_refresh_s, the default period of
# Kafka's clients (metadata.max.age.ms, topic.metadata.refresh.interval.ms = 5 min).
w7_refresh_s=300
# W2: brokers per cluster, replication factor and min.insync.replicas of its topic.
w2_brokers=3
w2_rf=3
w2_min_isr=2
# W7 holds ~1,000 sockets in the broker and in the load generator, plus the broker's segment
# and index files of 1,000 partitions.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
record_size=1024
partitions=6
segment_bytes=1073741824

if ! pkg-config --exists rdkafka 2>/dev/null || ! command -v python3 >/dev/null ||
   [ ! -f /usr/share/java/zookeeper.jar ]; then  # ZooKeeper: W2's Varve cluster
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq librdkafka-dev pkg-config python3 zookeeper >/dev/null
fi
# ------------------------------------------------------------------------------ build/fetch
build=${BENCH_BUILD:-$repo/build-bench}
if [ -z "${VARVE_BIN:-}" ]; then
  if [ ! -f "$build/build.ninja" ]; then
    cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  ninja -C "$build" -j "$(nproc)" varve >/dev/null
  VARVE_BIN=$build/varve
fi
if [ ! -f "$build/loadgen/build.ninja" ]; then
  cmake -S "$here/loadgen" -B "$build/loadgen" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
ninja -C "$build/loadgen" >/dev/null
loadgen=$build/loadgen/varve-loadgen
if [ "$mode" != smoke ]; then
  kafka_home=$("$here/fetch-kafka.sh" "${KAFKA_VERSION:-4.1.2}")
  kafka_version=$(basename "$kafka_home"); kafka_version=${kafka_version#kafka-}
fi

started_all=$(date +%s)
tmp=${BENCH_TMP:-$(mktemp -d /tmp/varve-bench.XXXXXX)}
mkdir -p "$tmp/logs"
logs=$tmp/logs
# Every broker of the run execs this copy, so a rebuild of $VARVE_BIN during the run (a shared
# build directory) can neither mix two builds in one table nor exec a half-written file.
mkdir -p "$tmp/bin"
varve_exe=$tmp/bin/varve
cp "$VARVE_BIN" "$varve_exe"
varve_built=$(date -u -r "$VARVE_BIN" '+%Y-%m-%d %H:%M UTC')
broker_pid=
w2_varve_dir=      # set while W2's Varve cluster may run
w2_kafka_pids=()   # W2's Kafka nodes while they run, the controller node first
cleanup() {
  if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
    kill "$broker_pid" 2>/dev/null || true
    sleep 2
    kill -9 "$broker_pid" 2>/dev/null || true
  fi
  [ -n "$w2_varve_dir" ] && stop_varve_cluster
  [ ${#w2_kafka_pids[@]} -gt 0 ] && stop_kafka_cluster
  rm -rf "$build/bench-last"
  cp -r "$logs" "$build/bench-last" 2>/dev/null || true
  if [ "${BENCH_KEEP:-0}" != 1 ] && [ -z "${BENCH_TMP:-}" ]; then
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT

log() { printf '[bench %4ds] %s\n' $(( $(date +%s) - started_all )) "$*" >&2; }

# free_port: a loopback port that is free now and was not handed out before in this run (the
# kernel can return the same ephemeral port to two binds in a row once the first socket is
# closed: a Kafka node once got one port for its PLAINTEXT and CONTROLLER listeners). Runs in
# command substitutions (subshells), so the ports handed out are kept in a file.
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    if ! grep -qx "$p" "$tmp/ports-used" 2>/dev/null; then
      echo "$p" >> "$tmp/ports-used"
      echo "$p"
      return 0
    fi
  done
  echo "bench/run.sh: no unused free port found" >&2
  return 1
}

# field FILE KEY: the value of KEY= on the last RESULT line of FILE.
field() {
  grep '^RESULT' "$1" | tail -1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# settle_disk: writes back every dirty page before a measured step, so no step pays for the
# writeback of the step (or the broker) before it. Without it the second 1.4 GiB written in a
# row (W1 with 2 clients, right after W1) ran into the kernel's background writeback and
# dirty-page throttling, for either broker: once 396 against 1,233 MB/s for Varve.
settle_disk() {
  sync
}

# varve_metric NAME: the value of Varve's unlabelled metric NAME from its admin /metrics
# (the broker started last by start_varve), or n/a.
varve_metric() {
  python3 - "$varve_admin_port" "$1" <<'PY' 2>/dev/null || echo n/a
import sys, urllib.request
port, name = sys.argv[1], sys.argv[2]
text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
for line in text.splitlines():
    if line.startswith(name + " "):
        print(line.split()[1])
        break
else:
    print("n/a")
PY
}

# warm_memory MIB: writes a MIB-MiB file next to the brokers' data and deletes it, so the
# page cache a broker then fills reuses memory this VM has touched recently. On these VMs
# (virtio_balloon, virtio_mem, DAMON) writing into memory the host has taken back costs
# ~10x more kernel time per byte: a plain dd of 2.5 GB took 0.6 s the first time and
# 5.3-6.4 s the next ones, 93% in copy_folio_from_iter_atomic; after deleting the files,
# 0.4 s again. Without this, whichever broker ran second reused the first one's freed
# page cache, and the first paid (Varve's two-client W1: 457 against 1,315 MB/s). Capped at
# 60% of MemAvailable. Not timed; both brokers get the same before each phase.
warm_memory() {
  local want=$1 avail
  avail=$(awk '/MemAvailable/ { printf "%d", $2 * 0.6 / 1024 }' /proc/meminfo)
  [ "$want" -gt "$avail" ] && want=$avail
  [ "$want" -gt 0 ] || return 0
  dd if=/dev/zero of="$tmp/warm-memory" bs=1M count="$want" status=none 2>/dev/null || true
  rm -f "$tmp/warm-memory"
}

# cpu_ticks PID: user + system CPU time of PID so far, in clock ticks.
cpu_ticks() {
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
# cpu_per_gib TICKS_BEFORE TICKS_AFTER RECORDS: broker CPU seconds per GiB of records.
cpu_per_gib() {
  awk -v a="$1" -v b="$2" -v n="$3" -v s="$record_size" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%.2f", (b - a) / hz / (n * s / 1073741824) }'
}

# rss_mib PID FIELD (VmRSS or VmHWM) in MiB.
rss_mib() {
  awk -v f="$2:" '$1 == f { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

declare -A R  # R[<broker>.<metric>] = value

# step LOG CMD...: runs CMD with its output in LOG; on failure shows LOG and the broker's
# log (or the logs in current_logs, for a cluster) and stops the run.
current_broker=
current_logs=()
step() {
  local out=$1; shift
  if ! "$@" > "$out" 2>&1; then
    echo "bench: step failed: $*" >&2
    tail -20 "$out" >&2
    if [ ${#current_logs[@]} -gt 0 ]; then
      local f
      for f in "${current_logs[@]}"; do
        echo "--- last lines of $f:" >&2
        tail -20 "$f" >&2 || true
      done
    elif [ -n "$current_broker" ]; then
      echo "--- last lines of the $current_broker broker log:" >&2
      tail -20 "$logs/$current_broker.broker.log" >&2
    fi
    exit 1
  fi
}

# -------------------------------------------------------------------------- machine limits
if [ -z "$only" ]; then
log "machine: loopback TCP bandwidth (${loop_s}s)"
step "$logs/loopback.log" "$loadgen" loopback --seconds "$loop_s"
R[machine.loopback]=$(field "$logs/loopback.log" mb_per_s)
log "machine: sequential write bandwidth (dd ${dd_mib} MiB, O_DIRECT)"
if dd if=/dev/zero of="$tmp/dd.bin" bs=1M count="$dd_mib" oflag=direct 2> "$logs/dd.log"; then
  R[machine.seqwrite]=$(awk '/copied/ { for (i = 1; i <= NF; i++) if ($i ~ /^s,?$/) s = $(i-1);
                                          printf "%.1f", $1 / s / 1048576 }' "$logs/dd.log")
else
  R[machine.seqwrite]=n/a
fi
rm -f "$tmp/dd.bin"
else
  R[machine.loopback]=n/a; R[machine.seqwrite]=n/a
fi

# ------------------------------------------------------------------------------- brokers
# prepare_varve DIR PORT: writes DIR/server.properties, with the admin listener on a free port
# (varve_admin_port), before the clock of W6 starts (free_port runs python3: ~50-80 ms).
prepare_varve() {
  varve_admin_port=$(free_port)
  cat > "$1/server.properties" <<EOF
node.id=0
listeners=PLAINTEXT://127.0.0.1:$2
admin.listeners=http://127.0.0.1:$varve_admin_port
log.dirs=$1/data
num.partitions=$partitions
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
min.insync.replicas=1
log.segment.bytes=$segment_bytes
log.retention.hours=168
group.initial.rebalance.delay.ms=0
EOF
  mkdir -p "$1/data"
}

start_varve() {  # start_varve DIR PORT NAME -> broker_pid (after prepare_varve DIR PORT)
  "$varve_exe" broker "$1/server.properties" > "$logs/$3.broker.log" 2>&1 &
  broker_pid=$!
}

kafka_java() {  # the JVM settings of Kafka's own start scripts; exec: $! is the JVM
  exec java -Xmx1G -Xms1G -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -Djava.awt.headless=true -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    -cp "$kafka_home/libs/*" "$@"
}

prepare_kafka() {  # prepare_kafka DIR PORT: config + storage format (not timed)
  local cport; cport=$(free_port)
  cat > "$1/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$2,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$2
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$1/data
num.partitions=$partitions
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
min.insync.replicas=1
log.segment.bytes=$segment_bytes
log.retention.hours=168
group.initial.rebalance.delay.ms=0
EOF
  local id; id=$(java -cp "$kafka_home/libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
  java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$kafka_home/libs/*" \
    kafka.tools.StorageTool format -t "$id" -c "$1/server.properties" > "$logs/kafka.format.log" 2>&1
}

start_kafka() {  # start_kafka DIR PORT NAME -> broker_pid
  kafka_java kafka.Kafka "$1/server.properties" > "$logs/$3.broker.log" 2>&1 &
  broker_pid=$!
}

stop_broker() {
  kill "$broker_pid" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$broker_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$broker_pid" 2>/dev/null || true
  wait "$broker_pid" 2>/dev/null || true
  broker_pid=
}

run_broker() {  # run_broker NAME(varve|kafka)
  local name=$1 dir=$tmp/$1 port
  current_broker=$name
  port=$(free_port)
  mkdir -p "$dir"
  local b=127.0.0.1:$port
  [ "$name" = kafka ] && prepare_kafka "$dir" "$port"
  [ "$name" = varve ] && prepare_varve "$dir" "$port"

  log "$name: W6 start -> first acknowledged produce"
  local t0; t0=$(date +%s%N)
  if [ "$name" = varve ]; then start_varve "$dir" "$port" "$name"; else start_kafka "$dir" "$port" "$name"; fi
  step "$logs/$name.w6.log" "$loadgen" probe --brokers "$b" --since-wall-ns "$t0" --timeout-s 120
  R[$name.w6]=$(field "$logs/$name.w6.log" first_ack_ms)

  sleep 2
  R[$name.rss_idle]=$(rss_mib "$broker_pid" VmRSS)
  log "$name: W5 idle RSS ${R[$name.rss_idle]} MiB"

  log "$name: W1 produce $w1_records x $record_size B, acks=1, $partitions partitions"
  step "$logs/$name.create.log" "$loadgen" create --brokers "$b" --topic w1 \
    --partitions "$partitions" --config "segment.bytes=$segment_bytes"
  settle_disk
  local c0 c1; c0=$(cpu_ticks "$broker_pid")
  step "$logs/$name.w1.log" "$loadgen" produce --brokers "$b" --topic w1 --records "$w1_records" \
    --record-size "$record_size" --acks 1 --linger-ms 5 --batch-size 1000000 --inflight 5
  c1=$(cpu_ticks "$broker_pid")
  R[$name.w1_cpu]=$(cpu_per_gib "$c0" "$c1" "$w1_records")
  R[$name.w1_rps]=$(field "$logs/$name.w1.log" records_per_s)
  R[$name.w1_mbps]=$(field "$logs/$name.w1.log" mb_per_s)
  R[$name.w1_p99]=$(field "$logs/$name.w1.log" p99_ms)
  R[$name.rss_w1]=$(rss_mib "$broker_pid" VmHWM)
  log "$name: W1 ${R[$name.w1_mbps]} MB/s; W5 peak RSS ${R[$name.rss_w1]} MiB"

  # W1 again with two producer clients (two librdkafka instances, each with its own
  # connection and threads, half the records each): one client's threads are a ceiling of
  # their own at these rates, so this is the broker's maximum more than the client's.
  log "$name: W1 with 2 producer clients, $w1_records x $record_size B in all"
  step "$logs/$name.create1b.log" "$loadgen" create --brokers "$b" --topic w1b \
    --partitions "$partitions" --config "segment.bytes=$segment_bytes"
  settle_disk
  c0=$(cpu_ticks "$broker_pid")
  step "$logs/$name.w1b.log" "$loadgen" produce --brokers "$b" --topic w1b --records "$w1_records" \
    --record-size "$record_size" --acks 1 --linger-ms 5 --batch-size 1000000 --inflight 5 \
    --producers 2
  c1=$(cpu_ticks "$broker_pid")
  R[$name.w1b_cpu]=$(cpu_per_gib "$c0" "$c1" "$w1_records")
  R[$name.w1b_mbps]=$(field "$logs/$name.w1b.log" mb_per_s)
  R[$name.w1b_p99]=$(field "$logs/$name.w1b.log" p99_ms)
  log "$name: W1 (2 clients) ${R[$name.w1b_mbps]} MB/s"

  log "$name: W4 consume $w1_records records (warm page cache)"
  c0=$(cpu_ticks "$broker_pid")
  step "$logs/$name.w4.log" "$loadgen" consume --brokers "$b" --topic w1 --records "$w1_records"
  c1=$(cpu_ticks "$broker_pid")
  R[$name.w4_cpu]=$(cpu_per_gib "$c0" "$c1" "$w1_records")
  R[$name.w4_mbps]=$(field "$logs/$name.w4.log" mb_per_s)
  if [ "$mode" = full ]; then
    if sync && echo 1 2>/dev/null > /proc/sys/vm/drop_caches; then
      log "$name: W4 consume (cold: page cache dropped)"
      step "$logs/$name.w4cold.log" "$loadgen" consume --brokers "$b" --topic w1 --records "$w1_records"
      R[$name.w4cold_mbps]=$(field "$logs/$name.w4cold.log" mb_per_s)
    else
      R[$name.w4cold_mbps]="n/a (drop_caches not writable)"
    fi
  fi

  log "$name: W3 end-to-end latency, $w3_rate records/s for ${w3_seconds}s, acks=all"
  step "$logs/$name.create3.log" "$loadgen" create --brokers "$b" --topic w3 --partitions "$partitions"
  settle_disk
  local stalls0=""
  [ "$name" = varve ] && stalls0=$(varve_metric varve_event_loop_stalls_total)
  step "$logs/$name.w3.log" "$loadgen" e2e --brokers "$b" --topic w3 --rate "$w3_rate" \
    --seconds "$w3_seconds" --warmup-seconds "$w3_warmup" --acks all --record-size "$record_size"
  R[$name.w3_p50]=$(field "$logs/$name.w3.log" p50_ms)
  R[$name.w3_p99]=$(field "$logs/$name.w3.log" p99_ms)
  R[$name.w3_p999]=$(field "$logs/$name.w3.log" p999_ms)
  R[$name.w3_max]=$(field "$logs/$name.w3.log" max_ms)
  if [ "$name" = varve ]; then
    # The event-loop watchdog: did a blocked loop (>= 100 ms) cause W3's tail?
    R[$name.w3_stalls]=$(awk -v a="$stalls0" -v b="$(varve_metric varve_event_loop_stalls_total)" \
      'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/) print b - a; else print "n/a" }')
  fi

  if [ "$xp_records" -gt 0 ]; then
    log "$name: cross-check kafka-producer-perf-test ($xp_records records)"
    step "$logs/$name.create4.log" "$loadgen" create --brokers "$b" --topic xp --partitions "$partitions"
    if timeout 300 java -Xmx512M -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
         -cp "$kafka_home/libs/*" org.apache.kafka.tools.ProducerPerformance --topic xp \
         --num-records "$xp_records" --record-size "$record_size" --throughput -1 \
         --producer-props "bootstrap.servers=$b" acks=1 linger.ms=5 batch.size=1000000 \
         > "$logs/$name.xp.log" 2>&1; then
      local last; last=$(grep 'records sent' "$logs/$name.xp.log" | tail -1)
      R[$name.xp_mbps]=$(sed -E 's/.*\(([0-9.]+) MB\/sec\).*/\1/' <<< "$last")
      R[$name.xp_p99]=$(sed -E 's/.* ([0-9.]+) ms 99th.*/\1/' <<< "$last")
    else
      R[$name.xp_mbps]=failed; R[$name.xp_p99]=failed
    fi
    log "$name: cross-check kafka-consumer-perf-test"
    if timeout 180 java -Xmx512M -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
         -cp "$kafka_home/libs/*" org.apache.kafka.tools.ConsumerPerformance \
         --bootstrap-server "$b" --topic xp --messages "$xp_records" --group "bench-$name" \
         --timeout 60000 > "$logs/$name.xc.log" 2>&1; then
      # CSV: start, end, MB, MB/s, nMsg, nMsg/s, rebalance ms, fetch ms, fetch MB/s, fetch nMsg/s
      R[$name.xc_mbps]=$(grep -E '^[0-9]{4}-' "$logs/$name.xc.log" | tail -1 | awk -F', *' '{ print $9 }')
      [ -n "${R[$name.xc_mbps]}" ] || R[$name.xc_mbps]=failed
    else
      R[$name.xc_mbps]=failed
    fi
  fi
  log "$name: stopping"
  stop_broker
  rm -rf "$dir/data"
}

# ------------------------------------------------------------------------ W2: 3-broker clusters
# free_port_run N: the first of N consecutive loopback ports that are free now, chosen below
# Linux's ephemeral range (scripts/cluster.sh puts broker i on base+i).
free_port_run() {
  python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(500):
    base = random.randrange(20000, 32000 - n)
    held = []
    try:
        for p in range(base, base + n):
            s = socket.socket()
            held.append(s)
            s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        for s in held:
            s.close()
    print(base)
    sys.exit(0)
sys.exit("no run of %d free ports" % n)
PY
}

# sum_cpu_ticks PID...: user + system CPU ticks of all the PIDs so far.
sum_cpu_ticks() {
  local p t=0
  for p in "$@"; do t=$(( t + $(cpu_ticks "$p") )); done
  echo "$t"
}

# sum_rss_mib FIELD PID...: VmRSS or VmHWM of all the PIDs, summed, in MiB.
sum_rss_mib() {
  local f=$1; shift
  local p
  for p in "$@"; do rss_mib "$p" "$f"; echo; done | awk '{ s += $1 } END { printf "%.1f", s }'
}

# start_varve_cluster DIR -> w2_bootstrap, w2_broker_pids, w2_all_pids (brokers + ZooKeeper)
start_varve_cluster() {
  local dir=$1 base zk i
  base=$(free_port_run "$w2_brokers")
  zk=$(free_port)
  w2_varve_dir=$dir
  current_logs=("$dir/zookeeper/zookeeper.log")
  for ((i = 0; i < w2_brokers; i++)); do current_logs+=("$dir/broker-$i/broker.log"); done
  # admin.listeners= : no admin HTTP (only the broker ports were checked to be free).
  step "$logs/varve.w2start.log" env VARVE_BIN="$varve_exe" "$repo/scripts/cluster.sh" start \
    "$w2_brokers" --dir "$dir" --base-port "$base" --zk-port "$zk" \
    --replication-factor "$w2_rf" \
    --override admin.listeners= \
    --override "num.partitions=$partitions" \
    --override "min.insync.replicas=$w2_min_isr" \
    --override "transaction.state.log.min.isr=$w2_min_isr" \
    --override "log.segment.bytes=$segment_bytes" \
    --override log.retention.hours=168
  w2_bootstrap=; w2_broker_pids=()
  for ((i = 0; i < w2_brokers; i++)); do
    w2_bootstrap+="${w2_bootstrap:+,}127.0.0.1:$((base + i))"
    w2_broker_pids+=("$(cat "$dir/broker-$i/broker.pid")")
  done
  w2_all_pids=("${w2_broker_pids[@]}" "$(cat "$dir/zookeeper/zookeeper.pid")")
}

stop_varve_cluster() {
  local dir=$w2_varve_dir i
  "$repo/scripts/cluster.sh" stop --dir "$dir" >> "$logs/varve.w2stop.log" 2>&1 || true
  for ((i = 0; i < w2_brokers; i++)); do
    cp "$dir/broker-$i/broker.log" "$logs/varve.w2.broker-$i.log" 2>/dev/null || true
  done
  cp "$dir/zookeeper/zookeeper.log" "$logs/varve.w2.zookeeper.log" 2>/dev/null || true
  w2_varve_dir=
}

# start_kafka_cluster DIR -> w2_bootstrap, w2_broker_pids (= w2_all_pids): KRaft, node 1 is
# controller and broker, nodes 2..N brokers only; all formatted with one cluster id (the
# format is not timed).
start_kafka_cluster() {
  local dir=$1 cport id i port roles listeners
  cport=$(free_port)
  id=$(java -cp "$kafka_home/libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
  w2_bootstrap=
  current_logs=()
  local fmt_pids=()
  for ((i = 1; i <= w2_brokers; i++)); do
    port=$(free_port)
    w2_bootstrap+="${w2_bootstrap:+,}127.0.0.1:$port"
    mkdir -p "$dir/node-$i"
    if [ "$i" = 1 ]; then
      roles=broker,controller
      listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
    else
      roles=broker
      listeners="PLAINTEXT://127.0.0.1:$port"
    fi
    cat > "$dir/node-$i/server.properties" <<PROPS
process.roles=$roles
node.id=$i
controller.quorum.voters=1@127.0.0.1:$cport
listeners=$listeners
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/node-$i/data
num.partitions=$partitions
default.replication.factor=$w2_rf
offsets.topic.replication.factor=$w2_rf
transaction.state.log.replication.factor=$w2_rf
transaction.state.log.min.isr=$w2_min_isr
min.insync.replicas=$w2_min_isr
log.segment.bytes=$segment_bytes
log.retention.hours=168
group.initial.rebalance.delay.ms=0
PROPS
    java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$kafka_home/libs/*" \
      kafka.tools.StorageTool format -t "$id" -c "$dir/node-$i/server.properties" \
      > "$logs/kafka.w2.format-$i.log" 2>&1 &
    fmt_pids+=($!)
    current_logs+=("$logs/kafka.w2.node-$i.log")
  done
  for i in "${fmt_pids[@]}"; do
    wait "$i" || { echo "bench: kafka storage format failed:" >&2; cat "$logs"/kafka.w2.format-*.log >&2; exit 1; }
  done
  w2_kafka_pids=()
  for ((i = 1; i <= w2_brokers; i++)); do
    kafka_java kafka.Kafka "$dir/node-$i/server.properties" > "$logs/kafka.w2.node-$i.log" 2>&1 &
    w2_kafka_pids+=($!)
  done
  w2_broker_pids=("${w2_kafka_pids[@]}")
  w2_all_pids=("${w2_kafka_pids[@]}")
}

# stop_kafka_cluster: the broker-only nodes first (their controlled shutdown needs the
# controller), then the controller node; SIGKILL after 30 s.
stop_kafka_cluster() {
  local group p
  for group in "${w2_kafka_pids[*]:1}" "${w2_kafka_pids[0]}"; do
    for p in $group; do kill "$p" 2>/dev/null || true; done
    for p in $group; do
      for _ in $(seq 1 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$p" 2>/dev/null || true
      wait "$p" 2>/dev/null || true
    done
  done
  w2_kafka_pids=()
}

# run_w2 NAME: W2 on a fresh 3-broker cluster of that kind.
run_w2() {
  local name=$1 dir=$tmp/$1-w2
  mkdir -p "$dir"
  current_broker=
  log "$name: W2 start a $w2_brokers-broker cluster"
  if [ "$name" = varve ]; then start_varve_cluster "$dir"; else start_kafka_cluster "$dir"; fi
  local b=$w2_bootstrap
  step "$logs/$name.w2create.log" "$loadgen" create --brokers "$b" --topic w2 \
    --partitions "$partitions" --replication-factor "$w2_rf" --wait-brokers "$w2_brokers" \
    --config "min.insync.replicas=$w2_min_isr,segment.bytes=$segment_bytes"
  log "$name: W2 produce $w1_records x $record_size B, acks=all, RF=$w2_rf, min.insync.replicas=$w2_min_isr"
  local c0 c1
  settle_disk
  c0=$(sum_cpu_ticks "${w2_all_pids[@]}")
  step "$logs/$name.w2.log" "$loadgen" produce --brokers "$b" --topic w2 --records "$w1_records" \
    --record-size "$record_size" --acks all --linger-ms 5 --batch-size 1000000 --inflight 5
  c1=$(sum_cpu_ticks "${w2_all_pids[@]}")
  R[$name.w2_cpu]=$(cpu_per_gib "$c0" "$c1" "$w1_records")
  R[$name.w2_rps]=$(field "$logs/$name.w2.log" records_per_s)
  R[$name.w2_mbps]=$(field "$logs/$name.w2.log" mb_per_s)
  R[$name.w2_p99]=$(field "$logs/$name.w2.log" p99_ms)
  R[$name.w2_hwm]=$(sum_rss_mib VmHWM "${w2_broker_pids[@]}")
  log "$name: W2 ${R[$name.w2_mbps]} MB/s; brokers' peak RSS ${R[$name.w2_hwm]} MiB (sum)"
  log "$name: W2 stopping the cluster"
  if [ "$name" = varve ]; then stop_varve_cluster; else stop_kafka_cluster; fi
  current_logs=()
  rm -rf "$dir"
}

# run_w7 NAME: W7 on a broker started afresh (so its memory is W7's alone).
run_w7() {
  local name=$1 dir=$tmp/$1-w7 port
  current_broker=$name
  port=$(free_port)
  mkdir -p "$dir"
  local b=127.0.0.1:$port
  [ "$name" = kafka ] && prepare_kafka "$dir" "$port"
  [ "$name" = varve ] && prepare_varve "$dir" "$port"
  log "$name: W7 start a fresh broker"
  if [ "$name" = varve ]; then start_varve "$dir" "$port" "$name.w7"; else start_kafka "$dir" "$port" "$name.w7"; fi
  current_broker=$name.w7
  step "$logs/$name.w7probe.log" "$loadgen" probe --brokers "$b" --timeout-s 120
  log "$name: W7 create a topic of $w7_partitions partitions"
  step "$logs/$name.w7create.log" "$loadgen" create --brokers "$b" --topic w7 \
    --partitions "$w7_partitions" --config "segment.bytes=$segment_bytes"
  R[$name.w7_create]=$(field "$logs/$name.w7create.log" seconds)
  sleep 2
  R[$name.w7_rss_topic]=$(rss_mib "$broker_pid" VmRSS)
  log "$name: W7 $w7_connections connections ($w7_producers producing) for ${w7_seconds}s over $w7_partitions partitions"
  settle_disk
  step "$logs/$name.w7.log" "$loadgen" scale --brokers "$b" --topic w7 \
    --connections "$w7_connections" --producers "$w7_producers" --seconds "$w7_seconds" \
    --record-size "$record_size" --broker-pid "$broker_pid" --acks 1 --linger-ms 5 \
    --batch-size 1000000 --inflight 5 --refresh-s "$w7_refresh_s"
  local k
  for k in records_per_s mb_per_s p99_ms broker_cpu_s_per_gib rss_open_mib rss_end_mib hwm_mib \
           broker_sockets_open; do
    R[$name.w7_$k]=$(field "$logs/$name.w7.log" "$k")
  done
  log "$name: W7 ${R[$name.w7_mb_per_s]} MB/s; RSS ${R[$name.w7_rss_open_mib]} MiB with the connections open"
  stop_broker
  rm -rf "$dir/data"
}

# Page cache each phase writes, MiB (warm_memory): W1 twice plus the cross-check; W2's three
# replicas; W7 at ~450 MB/s.
w1_mib=$(( w1_records * record_size / 1048576 ))
single_mib=$(( 2 * w1_mib + xp_records * record_size / 1048576 ))
w2_mib=$(( w2_rf * w1_mib ))
w7_mib=$(( w7_seconds * 450 ))
if [ -z "$only" ]; then
  warm_memory "$single_mib"; run_broker varve
  [ "$mode" = smoke ] || { warm_memory "$single_mib"; run_broker kafka; }
fi
if [ -z "$only" ] || [ "$only" = w2 ]; then
  warm_memory "$w2_mib"; run_w2 varve
  [ "$mode" = smoke ] || { warm_memory "$w2_mib"; run_w2 kafka; }
fi
if [ -z "$only" ] || [ "$only" = w7 ]; then
  warm_memory "$w7_mib"; run_w7 varve
  [ "$mode" = smoke ] || { warm_memory "$w7_mib"; run_w7 kafka; }
fi

# --------------------------------------------------------------------------------- table
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0)
                                     printf "%.2f", a / b; else printf "-" }'
}
row() {  # row LABEL METRIC
  local v=${R[varve.$2]:-n/a} k=${R[kafka.$2]:-n/a}
  [ "$mode" = smoke ] && k=-
  printf '| %-52s | %12s | %12s | %11s |\n' "$1" "$v" "$k" "$(ratio "$v" "$k")"
}
w1_pct=$(awk -v a="${R[varve.w1_mbps]:-0}" -v s="${R[machine.seqwrite]}" \
  'BEGIN { if (s > 0) printf "%.0f%%", 100 * a / s; else printf "n/a" }')
kw1_pct=$(awk -v a="${R[kafka.w1_mbps]:-0}" -v s="${R[machine.seqwrite]}" \
  'BEGIN { if (s > 0 && a > 0) printf "%.0f%%", 100 * a / s; else printf "n/a" }')
w1b_pct=$(awk -v a="${R[varve.w1b_mbps]:-0}" -v s="${R[machine.seqwrite]}" \
  'BEGIN { if (s > 0) printf "%.0f%%", 100 * a / s; else printf "n/a" }')
kw1b_pct=$(awk -v a="${R[kafka.w1b_mbps]:-0}" -v s="${R[machine.seqwrite]}" \
  'BEGIN { if (s > 0 && a > 0) printf "%.0f%%", 100 * a / s; else printf "n/a" }')

elapsed=$(( $(date +%s) - started_all ))
{
  echo
  echo "mode=$mode${only:+ only=$only}  varve=$VARVE_BIN (built $varve_built)  kafka=${kafka_version:-n/a}  record=$record_size B  partitions=$partitions  RF=1 (W2: $w2_brokers brokers, RF=$w2_rf, min.insync.replicas=$w2_min_isr)  elapsed=${elapsed}s"
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2/1048576 }' /proc/meminfo), kernel $(uname -r);" \
       "loopback ${R[machine.loopback]} MB/s; sequential write (O_DIRECT) ${R[machine.seqwrite]} MB/s"
  echo
  printf '| %-52s | %12s | %12s | %11s |\n' workload Varve Kafka Varve/Kafka
  printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..54})" "$(printf -- '-%.0s' {1..14})" \
    "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..13})"
  if [ -z "$only" ]; then
  row "W1 produce acks=1, records/s" w1_rps
  row "W1 produce acks=1, MB/s" w1_mbps
  row "W1 produce send->ack p99, ms" w1_p99
  row "W1 broker CPU seconds per GiB produced" w1_cpu
  row "W1 with 2 producer clients, MB/s" w1b_mbps
  row "W1 with 2 producer clients, send->ack p99, ms" w1b_p99
  row "W1 with 2 producer clients, broker CPU s per GiB" w1b_cpu
  printf '| %-52s | %12s | %12s | %11s |\n' "W1 as share of sequential-write limit" "$w1_pct" "$kw1_pct" -
  printf '| %-52s | %12s | %12s | %11s |\n' "W1 with 2 clients, share of sequential-write limit" "$w1b_pct" "$kw1b_pct" -
  fi
  if [ -z "$only" ] || [ "$only" = w2 ]; then
  row "W2 produce acks=all, 3 brokers RF=3, records/s" w2_rps
  row "W2 produce acks=all, 3 brokers RF=3, MB/s" w2_mbps
  row "W2 produce send->ack p99, ms" w2_p99
  row "W2 cluster CPU seconds per GiB produced" w2_cpu
  row "W2 peak RSS (VmHWM) of the 3 brokers, sum, MiB" w2_hwm
  fi
  if [ -z "$only" ]; then
  row "W3 end-to-end p50 ms ($w3_rate rec/s, acks=all)" w3_p50
  row "W3 end-to-end p99 ms" w3_p99
  row "W3 end-to-end p99.9 ms" w3_p999
  row "W3 end-to-end max ms" w3_max
  row "W3 event-loop stalls >= 100 ms during W3 (Varve)" w3_stalls
  row "W4 consume MB/s, warm ($w1_records records)" w4_mbps
  row "W4 broker CPU seconds per GiB consumed" w4_cpu
  if [ "$mode" = full ]; then row "W4 consume MB/s, cold" w4cold_mbps; fi
  row "W5 RSS idle, MiB" rss_idle
  row "W5 peak RSS (VmHWM) after W1, MiB" rss_w1
  row "W6 start -> first acknowledged produce, ms" w6
  fi
  if [ -z "$only" ] || [ "$only" = w7 ]; then
  row "W7 create topic of $w7_partitions partitions, s" w7_create
  row "W7 RSS with the $w7_partitions-partition topic, MiB" w7_rss_topic
  row "W7 RSS with $w7_connections connections open, MiB" w7_rss_open_mib
  row "W7 produce over $w7_partitions partitions, records/s" w7_records_per_s
  row "W7 produce over $w7_partitions partitions, MB/s" w7_mb_per_s
  row "W7 produce send->ack p99, ms" w7_p99_ms
  row "W7 broker CPU seconds per GiB produced" w7_broker_cpu_s_per_gib
  row "W7 RSS after produce, $w7_connections connections open, MiB" w7_rss_end_mib
  row "W7 peak RSS (VmHWM), MiB" w7_hwm_mib
  row "W7 broker sockets open (check: >= $w7_connections)" w7_broker_sockets_open
  fi
  if [ -z "$only" ] && [ "$xp_records" -gt 0 ]; then
    row "cross-check kafka-producer-perf-test MB/s" xp_mbps
    row "cross-check kafka-producer-perf-test p99 ms" xp_p99
    row "cross-check kafka-consumer-perf-test fetch MB/s" xc_mbps
  fi
  echo
  echo "Lower is better for latency, CPU, RSS and W6 rows; higher for throughput rows."
  if [ -z "$only" ] || [ "$only" = w2 ]; then
    echo "W2 cluster CPU: Varve's 3 brokers + ZooKeeper, Kafka's 3 nodes (node 1 is also the KRaft controller)."
  fi
  echo "Logs of every step: $build/bench-last/"
} | tee "$logs/table.txt"
