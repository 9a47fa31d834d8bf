#!/usr/bin/env python3
"""The seed's exactly-once scenario (issue #5) on a 3-broker cluster: the Java
consume-transform-produce copier (tests/transactions, `Main copier`: read_committed consumer in
a group, transactional producer, sendOffsetsToTransaction with the consumer's group metadata)
copies N records from an input topic to an output topic (3 partitions each, replication
factor 3, min.insync.replicas 2) while
  1. the broker of the copier's transaction coordinator is SIGKILLed (and restarted),
  2. the leader of an output partition is SIGKILLed (and restarted),
  3. the copier itself is SIGKILLed and restarted with the same transactional id
     (the new instance fences the old one).
A copier that exits with an error is restarted the same way. Then: read_committed output
holds every input record exactly once; read_uncommitted output holds at least as many
records (the aborted ones too). Prints `records=N committed_output=N duplicates=0
missing=0 uncommitted_output=M copier_starts=K`.
"""

import argparse
import os
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "cluster", "lib"))
import scenario_util as su  # noqa: E402
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402
from scenario_util import require  # noqa: E402

TXN_PARTITIONS = 50
PARTITIONS = 3


def java_string_hash(s):
    h = 0
    units = s.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i:i + 2], "big")) & 0xFFFFFFFF
    return h


class Copier:
    def __init__(self, c, env):
        self.c = c
        self.env = env
        self.proc = None
        self.starts = 0
        self.log = open(os.path.join(c.dir, "copier.log"), "a")

    def start(self):
        env = dict(os.environ, VARVE_BOOTSTRAP=self.c.bootstrap(), **self.env)
        self.proc = subprocess.Popen([os.path.join(HERE, "run.sh"), "copier"], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.starts += 1
        su.log(f"copier started (pid {self.proc.pid}, start #{self.starts})")

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        su.log("copier SIGKILLed")

    def check(self):
        """Restarts a copier that failed; True once one finished."""
        rc = self.proc.poll()
        if rc is None:
            return False
        if rc == 0:
            return True
        require(self.starts < 15, f"copier keeps failing (exit {rc}); see {self.log.name}")
        su.log(f"copier exited {rc}; restarting it")
        self.start()
        return False


def progress(probe, src):
    """Sum of the group's committed offsets (OffsetFetch through a consumer of the group that
    never joins it; read_uncommitted, so pending transactional offsets do not block it)."""
    try:
        got = probe.committed([TopicPartition(src, p) for p in range(PARTITIONS)], timeout=10)
    except Exception:
        return -1
    return sum(tp.offset for tp in got if tp.offset >= 0)


def wait_progress(c, copier, probe, src, target, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if copier.check():
            return
        if progress(probe, src) >= target:
            return
        time.sleep(0.5)
    raise su.ScenarioFailure(f"copier made no progress to {target} within {timeout}s")


def read_topic(bootstrap, topic, isolation, timeout=180):
    cons = Consumer({"bootstrap.servers": bootstrap, "group.id": "check-" + uuid.uuid4().hex[:8],
                     "enable.auto.commit": False, "isolation.level": isolation,
                     "enable.partition.eof": True, "logger": su.quiet_logger()})
    tps = [TopicPartition(topic, p, 0) for p in range(PARTITIONS)]
    cons.assign(tps)
    values, eof = [], set()
    deadline = time.monotonic() + timeout
    try:
        # The copier has finished and its last instance aborted whatever an earlier one left
        # open, so every partition's end (LSO = HW) is final.
        while len(eof) < PARTITIONS:
            require(time.monotonic() < deadline, f"reading {topic} ({isolation}) timed out")
            for m in cons.consume(1000, 0.5):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        eof.add(m.partition())
                    continue
                values.append(m.value().decode())
    finally:
        cons.close()
    return values


def body(c, n):
    tag = uuid.uuid4().hex[:6]
    src, dst, group, tid = f"ctp-in-{tag}", f"ctp-out-{tag}", f"ctp-group-{tag}", f"ctp-copier-{tag}"
    cfg = {"min.insync.replicas": "2"}
    su.create_topic(c, src, PARTITIONS, 3, cfg)
    dst_parts = su.create_topic(c, dst, PARTITIONS, 3, cfg)
    p = Producer({"bootstrap.servers": c.bootstrap(), "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5, "logger": su.quiet_logger()})
    for i in range(n):
        while True:
            try:
                p.produce(src, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % PARTITIONS)
                break
            except BufferError:
                p.poll(0.05)
    require(p.flush(120) == 0, "input records not all acknowledged")
    su.log(f"{n} input records written to {src}")

    probe = Consumer({"bootstrap.servers": c.bootstrap(), "group.id": group,
                      "enable.auto.commit": False, "logger": su.quiet_logger()})
    copier = Copier(c, {"VARVE_TXN_IN": src, "VARVE_TXN_OUT": dst, "VARVE_TXN_GROUP": group,
                        "VARVE_TXN_ID": tid, "VARVE_TXN_TOTAL": str(n)})
    copier.start()

    wait_progress(c, copier, probe, src, n // 10)
    tp = (java_string_hash(tid) & 0x7FFFFFFF) % TXN_PARTITIONS
    coord = su.partition_state(c, "__transaction_state", tp)[0]
    su.log(f"fault 1: kill the transaction coordinator, broker {coord} (__transaction_state-{tp})")
    c.kill(coord)
    time.sleep(5)
    c.restart(coord)

    wait_progress(c, copier, probe, src, 4 * n // 10)
    leader = su.partition_state(c, dst, 0)[0]
    su.log(f"fault 2: kill the leader of {dst}-0, broker {leader}")
    c.kill(leader)
    time.sleep(5)
    c.restart(leader)

    wait_progress(c, copier, probe, src, 7 * n // 10)
    su.log("fault 3: kill the copier; a new one takes over with the same transactional id")
    copier.kill()
    copier.start()

    deadline = time.monotonic() + 600
    while not copier.check():
        require(time.monotonic() < deadline, "copier did not finish within 600s")
        time.sleep(1)
    su.log(f"copier finished; group progress {progress(probe, src)}")
    probe.close()

    committed = read_topic(c.bootstrap(), dst, "read_committed")
    uncommitted = read_topic(c.bootstrap(), dst, "read_uncommitted")
    seen = {}
    for v in committed:
        seen[v] = seen.get(v, 0) + 1
    duplicates = sum(k - 1 for k in seen.values() if k > 1)
    missing = sum(1 for i in range(n) if f"v{i}" not in seen)
    print(f"records={n} committed_output={len(committed)} duplicates={duplicates} "
          f"missing={missing} uncommitted_output={len(uncommitted)} copier_starts={copier.starts}",
          flush=True)
    require(duplicates == 0 and missing == 0 and len(committed) == n,
            "read_committed output is not the input exactly once")
    require(len(uncommitted) >= n, "read_uncommitted sees fewer records than read_committed")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=50000)
    args = ap.parse_args()
    sys.exit(su.run_scenario("txn_cluster_ctp_faults", lambda c: body(c, args.records), overrides={
        "transaction.state.log.num.partitions": TXN_PARTITIONS,
        "offsets.topic.replication.factor": 3,
        "transaction.state.log.replication.factor": 3,
        "transaction.state.log.min.isr": 2,
        "group.initial.rebalance.delay.ms": 0,
    }))
