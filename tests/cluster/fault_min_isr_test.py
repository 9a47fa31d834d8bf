#!/usr/bin/env python3
"""With 2 of 3 brokers down, acks=all gets NOT_ENOUGH_REPLICAS and acks=1 still succeeds
(issue #4), and nothing acknowledged is lost once the brokers are back.

Starts ZooKeeper and 3 brokers (tests/cluster/lib/cluster.py), creates a 1-partition topic with
replication factor 3 and min.insync.replicas=2, produces with acks=all, kills both followers,
waits until the ISR has shrunk to the leader alone, then:
  - acks=all (librdkafka, retries=0 so the broker's error reaches the test): every record is
    rejected with NOT_ENOUGH_REPLICAS (none is written);
  - acks=1: every record is acknowledged.
Then restarts the followers, waits for the full ISR, produces with acks=all again and reads
the partition back: every acknowledged record is there, none of the rejected ones.
Prints `acks_all_rejected=N acks_1_acknowledged=M acknowledged=A lost=L`.
"""

import logging
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import cluster as cl  # noqa: E402
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition, OFFSET_BEGINNING  # noqa: E402

TOPIC = "fault-min-isr"
N = 200


class TestFailure(Exception):
    pass


def quiet_logger():
    q = logging.getLogger("varve.fault.quiet")
    q.addHandler(logging.NullHandler())
    q.propagate = False
    return q


def produce(bootstrap, acks, first, count, timeout=60):
    """Sends values first..first+count-1 with acks; returns ({value: offset}, {value: error})."""
    ok, errors = {}, {}

    def on_delivery(err, msg):
        v = int(msg.value())
        if err is None:
            ok[v] = msg.offset()
        else:
            errors[v] = err

    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "retries": 0,
                  "enable.idempotence": False, "message.timeout.ms": 30000,
                  "request.timeout.ms": 15000, "logger": quiet_logger()})
    for v in range(first, first + count):
        p.produce(TOPIC, key=b"k", value=str(v).encode(), partition=0, on_delivery=on_delivery)
    left = p.flush(timeout)
    if left:
        raise TestFailure(f"{left} acks={acks} records undelivered after {timeout}s")
    return ok, errors


def read_all(bootstrap, timeout=60):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"unused-{time.time_ns()}",
                  "enable.auto.commit": False, "logger": quiet_logger()})
    try:
        _, high = c.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=30)
        c.assign([TopicPartition(TOPIC, 0, OFFSET_BEGINNING)])
        got, pos = {}, 0
        deadline = time.monotonic() + timeout
        while pos < high:
            if time.monotonic() > deadline:
                raise TestFailure(f"read back stopped at offset {pos} of {high}")
            for m in c.consume(1000, 0.5):
                if m.error() is None:
                    got.setdefault(int(m.value()), []).append(m.offset())
                    pos = max(pos, m.offset() + 1)
        return got
    finally:
        c.close()


def run():
    c = cl.Cluster(3, overrides={"unclean.leader.election.enable": "false"})
    ok = False
    try:
        c.start()
        c.create_topic(TOPIC, 1, 3, {"min.insync.replicas": "2"})
        acked, errors = produce(c.bootstrap(), "all", 0, N)
        if errors:
            raise TestFailure(f"acks=all with the full ISR failed: {next(iter(errors.values()))}")

        leader = c.leader_of(TOPIC, 0)
        followers = [b.id for b in c.brokers if b.id != leader]
        for f in followers:
            c.kill(f)
        try:
            c.wait_for_isr_exact(TOPIC, 0, [leader], 60)
        except cl.ClusterError as e:
            raise TestFailure(str(e))

        all_ok, all_err = produce(c.healthy_bootstrap(), "all", N, N)
        codes = {e.code() for e in all_err.values()}
        if all_ok or codes != {KafkaError.NOT_ENOUGH_REPLICAS}:
            raise TestFailure(f"acks=all with ISR [{leader}]: {len(all_ok)} acknowledged, "
                              f"errors {sorted(KafkaError(x).name() for x in codes)}; expected "
                              f"every record rejected with NOT_ENOUGH_REPLICAS")
        one_ok, one_err = produce(c.healthy_bootstrap(), "1", 2 * N, N)
        if one_err or len(one_ok) != N:
            raise TestFailure(f"acks=1 with ISR [{leader}]: {len(one_ok)} acknowledged, "
                              f"first error {next(iter(one_err.values()), None)}")
        acked.update(one_ok)

        for f in followers:
            c.restart(f)
        c.wait_for_isr(TOPIC, 3, 120, partitions=1)
        again, errors = produce(c.bootstrap(), "all", 3 * N, N)
        if errors:
            raise TestFailure(f"acks=all after the ISR recovered: {next(iter(errors.values()))}")
        acked.update(again)

        got = read_all(c.bootstrap())
        lost = [v for v in acked if acked[v] not in got.get(v, [])]
        duplicated = sum(len(o) - 1 for o in got.values() if len(o) > 1)
        rejected_present = [v for v in all_err if v in got]
        print(f"acks_all_rejected={len(all_err)} acks_1_acknowledged={len(one_ok)} "
              f"acknowledged={len(acked)} lost={len(lost)} duplicated={duplicated} "
              f"rejected_present={len(rejected_present)}", flush=True)
        if lost or duplicated or rejected_present:
            raise TestFailure(f"lost {lost[:10]}, rejected but present {rejected_present[:10]}")
        ok = True
        print("PASS fault_min_isr", flush=True)
    except (TestFailure, cl.ClusterError) as e:
        print(f"FAIL fault_min_isr: {e}", flush=True)
    finally:
        if not ok:
            c.keep = True
            c.report_logs()
        c.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run())
