#!/usr/bin/env bash
# scripts/cluster.sh end to end: start ZooKeeper + 3 brokers on free loopback ports in a
# temporary directory, check status and listeners, stop, and check that exactly the started
# processes are gone. Usage: cluster_sh_test.sh VARVE_BIN
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
script=$here/../../scripts/cluster.sh
export VARVE_BIN=${1:?usage: cluster_sh_test.sh VARVE_BIN}
dir=$(mktemp -d /tmp/varve-cluster-test-XXXXXX)
fail() { echo "FAIL: $*" >&2; exit 1; }
cleanup() { "$script" stop --dir "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT

# A free base port P such that P..P+2 and P+100..P+102 are free, and a free ZooKeeper port.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Alive and not a zombie waiting for its (adoptive) parent to reap it.
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
zk_port=$(free_port)
# Below the kernel's ephemeral range: a port there may be the local end of any outgoing
# connection (nothing listens on it, yet bind fails), which made this test fail once.
read -r ephemeral_low _ < /proc/sys/net/ipv4/ip_local_port_range
span=$(( ephemeral_low - 10000 - 200 ))
[ "$span" -gt 1000 ] || span=10000
for _ in $(seq 20); do
  base=$(( (RANDOM % span) + 10000 ))
  busy=0
  for p in $base $((base + 1)) $((base + 2)) $((base + 100)) $((base + 101)) $((base + 102)); do
    port_open "$p" && busy=1
  done
  [ $busy = 0 ] && break
done

"$script" start 3 --base-port "$base" --zk-port "$zk_port" --dir "$dir" || fail "start"
"$script" status --dir "$dir" || fail "status after start"
pids=("$(cat "$dir/zookeeper/zookeeper.pid")")
for i in 0 1 2; do
  port_open $((base + i)) || fail "broker $i does not listen on $((base + i))"
  grep -qx "node.id=$i" "$dir/broker-$i/server.properties" || fail "broker $i node.id"
  grep -qx "zookeeper.connect=127.0.0.1:$zk_port/varve" "$dir/broker-$i/server.properties" ||
    fail "broker $i zookeeper.connect"
  pids+=("$(cat "$dir/broker-$i/broker.pid")")
done
port_open "$zk_port" || fail "ZooKeeper does not listen on $zk_port"
"$script" start 3 --base-port "$base" --zk-port "$zk_port" --dir "$dir" 2>/dev/null &&
  fail "a second start on a running cluster succeeded"

"$script" stop --dir "$dir" || fail "stop"
for pid in "${pids[@]}"; do
  alive "$pid" && fail "pid $pid still runs after stop"
done
"$script" status --dir "$dir" >/dev/null && fail "status reports a stopped cluster as running"
port_open "$zk_port" && fail "ZooKeeper port still open after stop"
echo "1 passed, 0 failed"
