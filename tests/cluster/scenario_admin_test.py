#!/usr/bin/env python3
"""Cluster administration (issue #4): controlled shutdown, preferred leader election with
Kafka's own kafka-leader-election tool, and topic deletion across brokers.

A 6-partition topic with replication factor 3 (min.insync.replicas=2) on 3 brokers; N records
with acks=all. Kafka's semantics, asserted:
1. Controlled shutdown: SIGTERM a broker V (not the controller) that leads some partitions.
   By the time its process has exited, Metadata (from the others) already shows every one of
   those partitions led by another broker and V out of every ISR — leadership moved before
   it stopped (ControlledShutdown), so no partition waited for a session timeout.
2. Preferred leader election: V restarts and rejoins every ISR; it leads nothing (leadership
   does not move back by itself within this test: auto.leader.rebalance.enable=false).
   `kafka-leader-election --election-type PREFERRED --all-topic-partitions` moves leadership
   of every partition back to its first replica.
3. Every acknowledged record is still there, exactly once (read from the final leaders).
4. DeleteTopics: every broker deletes its replicas (their directories disappear) and
   Metadata no longer lists the topic.
"""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import scenario_util as su  # noqa: E402
from scenario_util import require  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
RUN_CLASS = os.path.join(REPO, "tests", "kafka_tools", "bin", "_run-class.sh")
TOPIC = "scen-admin"
PARTITIONS = 6
N = 300


def leaders(c):
    md = c.admin().list_topics(topic=TOPIC, timeout=10)
    t = md.topics[TOPIC]
    return {p: (t.partitions[p].leader, list(t.partitions[p].replicas), list(t.partitions[p].isrs))
            for p in t.partitions}


def body(c):
    ctl, (victim,) = su.pick_non_controller(c, 1)
    parts = su.create_topic(c, TOPIC, PARTITIONS, 3, {"min.insync.replicas": "2"})
    acked = {}
    for p in range(PARTITIONS):
        acked[p] = su.produce(c.bootstrap(), TOPIC, p, "a", 0, N, "all", idempotent=True, retries=10)
        require(len(acked[p].acked) == N, f"{TOPIC}-{p}: {acked[p]}")
    led = sorted(p for p, (l, _, _) in parts.items() if l == victim)
    su.log(f"controller {ctl}; broker {victim} leads {led} of {TOPIC}")
    require(led, f"broker {victim} leads no partition of {TOPIC}: {parts}")

    # 1. Controlled shutdown.
    t0 = time.monotonic()
    c.terminate(victim)
    took = time.monotonic() - t0
    # UpdateMetadata reaches the brokers within moments of the controller's decision, which
    # came before the victim exited.
    after = None
    for _ in range(10):
        after = leaders(c)
        if all(after[p][0] != victim and victim not in after[p][2] for p in after):
            break
        time.sleep(0.2)
    su.log(f"SIGTERM took {took:.1f}s; after it (leader, replicas, isr): {after}")
    require(all(after[p][0] not in (victim, -1) for p in after),
            f"partitions still led by {victim} or offline after its controlled shutdown: {after}")
    require(all(victim not in after[p][2] for p in after),
            f"broker {victim} still in an ISR after its controlled shutdown: {after}")
    require(took < 20, f"controlled shutdown took {took:.1f}s")

    # 2. Back, then preferred leader election with Kafka's tool.
    c.restart(victim)
    for p in range(PARTITIONS):
        su.wait_isr(c, TOPIC, p, parts[p][1], 60)
    r = subprocess.run([RUN_CLASS, "org.apache.kafka.tools.LeaderElectionCommand",
                        "--bootstrap-server", c.bootstrap(), "--election-type", "PREFERRED",
                        "--all-topic-partitions"], capture_output=True, text=True, timeout=120)
    su.log(f"kafka-leader-election (exit {r.returncode}):\n{(r.stdout + r.stderr).strip()}")
    require(r.returncode == 0, "kafka-leader-election failed")
    final = None
    for _ in range(25):
        final = leaders(c)
        if all(final[p][0] == final[p][1][0] for p in final):
            break
        time.sleep(0.2)
    require(all(final[p][0] == final[p][1][0] for p in final),
            f"leaders are not the preferred replicas after the election: {final}")

    # 3. Nothing lost.
    total_lost = total_dup = 0
    for p in range(PARTITIONS):
        read = su.read_partition(c.bootstrap(), TOPIC, p)
        lost, dup = su.tally(acked[p], read, "a")
        total_lost += len(lost)
        total_dup += dup
    su.report("after controlled shutdown and preferred election",
              acknowledged=PARTITIONS * N, lost=total_lost, duplicated=total_dup)
    require(total_lost == 0 and total_dup == 0, "records lost or duplicated")

    # 4. Topic deletion across brokers.
    admin = c.admin()  # kept alive until the result arrives
    fs = admin.delete_topics([TOPIC], operation_timeout=30)
    fs[TOPIC].result(60)
    dirs = [os.path.join(b.data, f"{TOPIC}-{p}") for b in c.brokers for p in range(PARTITIONS)]
    su.wait_for(lambda: not any(os.path.exists(d) for d in dirs), 60,
                "every broker to delete the topic's partitions")
    su.wait_for(lambda: TOPIC not in c.admin().list_topics(timeout=10).topics, 30,
                "Metadata to drop the deleted topic")
    su.log("topic deleted on every broker")


if __name__ == "__main__":
    sys.exit(su.run_scenario("admin", body, overrides={"auto.leader.rebalance.enable": "false"}))
