#!/usr/bin/env python3
"""Transactions on a 3-broker cluster (ZooKeeper mode, tests/cluster/lib harness).

1. The Java scenarios of tests/transactions (consume-transform-produce with an aborted
   transaction, abort visibility, zombie fencing) against the cluster with replication
   factor 3: markers go to partition leaders on other brokers (WriteTxnMarkers over the
   wire), KIP-890 verification asks a coordinator on another broker, __transaction_state
   and __consumer_offsets are replicated. Then franz-go's transactional scenario
   (tests/interop/franz_go/txn.go) on the same cluster, its topics at replication factor 3.
2. Coordinator failover: a librdkafka transactional producer commits a transaction; the
   broker leading its __transaction_state partition is killed; the producer commits another
   transaction through the new coordinator, and one is aborted. read_committed sees exactly
   the committed records, read_uncommitted the aborted ones as well. The killed broker comes
   back and the state is unchanged.
"""

import os
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "cluster", "lib"))
import scenario_util as su  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from scenario_util import require  # noqa: E402

TXN_PARTITIONS = 50


def java_string_hash(s):
    # String.hashCode over UTF-16 code units.
    h = 0
    units = s.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i:i + 2], "big")) & 0xFFFFFFFF
    return h


def txn_partition(tid):
    # Kafka's rule: (String.hashCode & 0x7fffffff) % partitions (ASCII ids here).
    return (java_string_hash(tid) & 0x7FFFFFFF) % TXN_PARTITIONS


def run_java(c, scenario):
    env = dict(os.environ, VARVE_BOOTSTRAP=c.bootstrap(), VARVE_TXN_RF="3")
    r = subprocess.run([os.path.join(HERE, "run.sh"), scenario], env=env, capture_output=True,
                       text=True, timeout=300)
    su.log(f"java {scenario}: {r.stdout.strip()} {r.stderr.strip()[-2000:]}")
    require(r.returncode == 0, f"java scenario {scenario} failed: {r.stderr.strip()[-2000:]}")


def read_all(bootstrap, topic, isolation, expected, quiet_s=5.0, timeout=60):
    cons = Consumer({"bootstrap.servers": bootstrap, "group.id": "r-" + uuid.uuid4().hex[:8],
                     "enable.auto.commit": False, "isolation.level": isolation,
                     "logger": su.quiet_logger(), "topic.metadata.refresh.interval.ms": 1000})
    cons.assign([TopicPartition(topic, 0, 0)])
    values, idle = [], 0.0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and (len(values) < expected or idle < 1.0):
            m = cons.poll(0.5)
            if m is None:
                idle += 0.5
                if idle >= quiet_s and len(values) >= expected:
                    break
                continue
            if m.error():
                continue
            idle = 0.0
            values.append(m.value().decode())
    finally:
        cons.close()
    return values


def coordinator_failover(c):
    topic = "txn-failover"
    su.create_topic(c, topic, 1, 3)
    tid = "failover-" + uuid.uuid4().hex[:8]
    p = Producer({"bootstrap.servers": c.bootstrap(), "transactional.id": tid,
                  "transaction.timeout.ms": 60000, "logger": su.quiet_logger(),
                  "topic.metadata.refresh.interval.ms": 1000})
    p.init_transactions(60)
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, f"t1-{i}".encode())
    p.commit_transaction(60)

    tp = txn_partition(tid)
    leader = su.partition_state(c, "__transaction_state", tp)[0]
    su.log(f"{tid} lives in __transaction_state-{tp}, coordinator broker {leader}")
    require(leader is not None and leader >= 0, f"no coordinator for {tid}")
    c.kill(leader)
    new_leader = su.wait_leader(c, "__transaction_state", tp, 60, exclude=(leader,))
    su.log(f"coordinator moved to broker {new_leader}")

    p.begin_transaction()
    for i in range(10):
        p.produce(topic, f"t2-{i}".encode())
    p.commit_transaction(120)
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, f"a-{i}".encode())
    p.flush(60)
    p.abort_transaction(120)
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, f"t3-{i}".encode())
    p.commit_transaction(120)

    want = [f"t{t}-{i}" for t in (1, 2, 3) for i in range(10)]
    got = read_all(c.healthy_bootstrap(), topic, "read_committed", len(want))
    require(got == want, f"read_committed after failover: {got}")
    everything = read_all(c.healthy_bootstrap(), topic, "read_uncommitted", len(want) + 10)
    require(sorted(v for v in everything if v.startswith("a-")) == [f"a-{i}" for i in range(10)],
            f"read_uncommitted should see the aborted records: {everything}")

    c.restart(leader)
    su.wait_cluster(c)
    got = read_all(c.bootstrap(), topic, "read_committed", len(want))
    require(got == want, f"read_committed after the old coordinator came back: {got}")


def run_franz_go(c):
    # tests/interop/franz_go's txn scenario (commit/abort, GroupTransactSession, fencing)
    # with its topics at replication factor 3.
    binary = os.path.join(REPO, ".cache", "franz-go-interop")
    env = dict(os.environ, VARVE_BOOTSTRAP=c.bootstrap(), VARVE_REPLICATION_FACTOR="3")
    r = subprocess.run([binary, "txn"], env=env, capture_output=True, text=True, timeout=300)
    su.log(f"franz-go txn: {r.stdout.strip()[-3000:]} {r.stderr.strip()[-2000:]}")
    require(r.returncode == 0, f"franz-go txn failed: {r.stdout.strip()[-2000:]}")


def body(c):
    for scenario in ("ctp", "abort", "fencing"):
        run_java(c, scenario)
    run_franz_go(c)
    coordinator_failover(c)


if __name__ == "__main__":
    sys.exit(su.run_scenario("txn_cluster", body, overrides={
        "transaction.state.log.num.partitions": TXN_PARTITIONS,
        "offsets.topic.replication.factor": 3,
        "transaction.state.log.replication.factor": 3,
        "transaction.state.log.min.isr": 2,
        "min.insync.replicas": 2,
        "group.initial.rebalance.delay.ms": 0,
    }))
