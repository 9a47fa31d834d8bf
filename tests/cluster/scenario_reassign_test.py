#!/usr/bin/env python3
"""Partition reassignment (issue #4, KIP-455) with Kafka's own kafka-reassign-partitions tool
(org.apache.kafka.tools.reassign.ReassignPartitionsCommand from the Kafka 4.x jars that
tests/kafka_tools/install.sh fetches).

A 1-partition topic with replication factor 2 on brokers [A, B]; N records with acks=all.
The partition is moved to [C, B] (C the broker that had no replica, A removed) with
--execute while a second batch is produced, then --verify is polled until the tool reports
the reassignment complete. Kafka's semantics, asserted:
  - Metadata shows replicas [C, B] and ISR {B, C}; the leader is in the target;
  - broker A deleted its replica (its partition directory is gone);
  - every acknowledged record (both batches) is read back exactly once, at its offset;
  - ListPartitionReassignments (through --verify) reports nothing in progress;
  - C then serves the whole log as leader on its own: B is killed and every record is
    still there.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import scenario_util as su  # noqa: E402
from scenario_util import require  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
RUN_CLASS = os.path.join(REPO, "tests", "kafka_tools", "bin", "_run-class.sh")
TOOL = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
TOPIC = "scen-reassign"
N = 2000


def reassign_tool(bootstrap, plan_file, action, timeout=120):
    r = subprocess.run([RUN_CLASS, TOOL, "--bootstrap-server", bootstrap,
                        "--reassignment-json-file", plan_file, action],
                       capture_output=True, text=True, timeout=timeout)
    out = r.stdout + r.stderr
    su.log(f"kafka-reassign-partitions {action} (exit {r.returncode}):\n{out.strip()}")
    return r.returncode, out


def body(c):
    parts = su.create_topic(c, TOPIC, 1, 2)
    leader, replicas, _ = parts[0]
    a, b = replicas
    (target_new,) = [i for i in range(len(c.brokers)) if i not in replicas]
    target = [target_new, b]
    su.log(f"{TOPIC}-0 on {replicas} (leader {leader}); moving to {target}, removing {a}")

    first = su.produce(c.bootstrap(), TOPIC, 0, "r", 0, N, "all", idempotent=True, retries=10)
    require(len(first.acked) == N, f"first batch: {first}")

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"version": 1, "partitions": [
            {"topic": TOPIC, "partition": 0, "replicas": target}]}, f)
        plan = f.name
    rc, out = reassign_tool(c.bootstrap(), plan, "--execute")
    require(rc == 0 and "Successfully started partition reassignment" in out,
            f"--execute failed (exit {rc})")
    second = su.produce(c.bootstrap(), TOPIC, 0, "r", N, N, "all", idempotent=True, retries=10)
    require(len(second.acked) == N, f"second batch during the reassignment: {second}")

    deadline = time.monotonic() + 90
    while True:
        rc, out = reassign_tool(c.bootstrap(), plan, "--verify")
        if rc == 0 and "is completed" in out and "still in progress" not in out:
            break
        require(time.monotonic() < deadline, "reassignment not complete after 90 s")
        time.sleep(2)

    state = su.partition_state(c, TOPIC, 0)
    su.log(f"after the reassignment (leader, replicas, isr, error): {state}")
    require(state[1] == target, f"replicas {state[1]}, expected {target}")
    require(sorted(state[2]) == sorted(target), f"ISR {state[2]}, expected {sorted(target)}")
    require(state[0] in target, f"leader {state[0]} is not in the target {target}")

    gone = os.path.join(c.brokers[a].data, f"{TOPIC}-0")
    su.wait_for(lambda: not os.path.exists(gone), 30, f"broker {a} to delete {gone}")

    acked = dict(first.acked)
    acked.update(second.acked)
    first.acked = acked
    read = su.read_partition(c.bootstrap(), TOPIC, 0)
    lost, dup = su.tally(first, read, "r")
    su.report("after reassignment", acknowledged=len(acked), lost=len(lost), duplicated=dup)
    require(not lost and dup == 0, f"lost {lost[:10]}..., duplicated {dup}")

    # The new replica holds the whole log: with B gone it leads and serves everything.
    c.kill(b)
    su.wait_leader(c, TOPIC, 0, 60, want=target_new)
    read = su.read_partition(c.healthy_bootstrap(), TOPIC, 0)
    lost, dup = su.tally(first, read, "r")
    su.report(f"broker {target_new} alone", acknowledged=len(acked), lost=len(lost),
              duplicated=dup)
    require(not lost and dup == 0, f"new replica {target_new}: lost {lost[:10]}..., dup {dup}")


if __name__ == "__main__":
    sys.exit(su.run_scenario("reassign", body))
