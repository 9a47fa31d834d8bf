#!/usr/bin/env python3
"""The librdkafka side of the no-loss fault test (confluent-kafka). Same contract as the Java
verifier (java/src/main/java/varve/cluster/NoLossVerifier.java):

Produces --records records with the idempotent producer (acks=all) and remembers what was
acknowledged, then reads every partition from the beginning (assign, no group membership, no
commits) and checks that every acknowledged record is there exactly once, at the acknowledged
offset, in per-partition order. Record i goes to partition i % P with key i // P and value i
(decimal ASCII).

stdin:  "permit K" (records 0..K-1 may be sent), "verify" (read back and check);
        EOF aborts at once (exit 3).
stdout: "progress sent=S acked=A failed=F" every second while producing,
        "produced records=N acknowledged=A failed=F",
        "acknowledged=N lost=L duplicated=D misplaced=M reordered=R failed=F ..." (result).
Exit status: 0 when nothing was lost, duplicated, misplaced, reordered or left
unacknowledged; 1 otherwise; 2 on bad usage; 3 when aborted.
"""

import argparse
import os
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition, OFFSET_BEGINNING


NOT_ACKED = -1
# Acknowledged without an offset: librdkafka's idempotent producer reports a record whose own
# response was lost as delivered ("persisted") once the broker acknowledges a later batch of
# the same producer, and it has no offset for it then.
ACKED_NO_OFFSET = -2


class Aborted(Exception):
    pass


class Control:
    """Permits and the verify request, fed by a thread reading stdin."""

    def __init__(self):
        self.cv = threading.Condition()
        self.permitted = 0
        self.verify = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in sys.stdin:
            line = line.strip()
            with self.cv:
                if line.startswith("permit "):
                    self.permitted = max(self.permitted, int(line[7:]))
                elif line == "verify":
                    self.verify = True
                elif line:
                    print(f"rdkafka_verifier: ignoring control line {line!r}", file=sys.stderr)
                self.cv.notify_all()
        # The harness closed stdin: it is gone or gave up on this run. Exit at once rather
        # than wait out the delivery timeout.
        sys.stdout.flush()
        print("ABORT: stdin closed", file=sys.stderr, flush=True)
        os._exit(3)

    def wait_permit(self, i, poll):
        """Blocks until record i may be sent, calling poll() (serves delivery reports)."""
        while True:
            with self.cv:
                if self.permitted > i:
                    return
                self.cv.wait(0.1)
            poll()

    def wait_verify(self):
        with self.cv:
            while not self.verify:
                self.cv.wait(1)


def say(line):
    print(line, flush=True)


def produce(args, control, acked_offset):
    stats = {"sent": 0, "acked": 0, "failed": 0, "misrouted": 0, "first_failure": None,
             "fatal": None, "acked_no_offset": 0, "first_no_offset": None}
    P = args.partitions

    def on_delivery(err, msg):
        i = int(msg.value())
        if err is not None:
            stats["failed"] += 1
            if stats["first_failure"] is None:
                stats["first_failure"] = f"record {i}: {err}"
            return
        if msg.partition() != i % P:
            stats["misrouted"] += 1
        off = msg.offset()
        if off is None or off < 0:
            stats["acked_no_offset"] += 1
            if stats["first_no_offset"] is None:
                stats["first_no_offset"] = (f"record {i}: partition {msg.partition()} "
                                            f"offset {off} error {err}")
            acked_offset[i] = ACKED_NO_OFFSET
        else:
            acked_offset[i] = off
        stats["acked"] += 1

    def on_error(err):
        if err.fatal():
            stats["fatal"] = str(err)

    conf = {
        "bootstrap.servers": args.bootstrap,
        "client.id": "varve-fault-rdkafka-producer",
        "enable.idempotence": True,
        "acks": "all",
        # Long enough to ride over every failover of the run.
        "message.timeout.ms": 600000,
        "request.timeout.ms": 10000,
        "linger.ms": 5,
        "retry.backoff.ms": 100,
        "topic.metadata.refresh.interval.ms": 5000,
        "error_cb": on_error,
        "log_level": 3,
    }
    if os.environ.get("VARVE_RDKAFKA_DEBUG"):  # e.g. "eos,msg": librdkafka's debug contexts
        conf.update({"debug": os.environ["VARVE_RDKAFKA_DEBUG"], "log_level": 7})
    producer = Producer(conf)
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    nxt = time.monotonic()
    last_progress = time.monotonic()
    for i in range(args.records):
        control.wait_permit(i, lambda: producer.poll(0))
        if interval:
            now = time.monotonic()
            nxt = max(nxt, now - 0.05)  # no burst to catch up after waiting for a permit
            if nxt > now:
                producer.poll(nxt - now)  # serves delivery reports while pacing
                now = time.monotonic()
                if nxt > now:
                    time.sleep(nxt - now)
            nxt += interval
        while True:
            try:
                producer.produce(args.topic, key=str(i // P).encode(), value=str(i).encode(),
                                 partition=i % P, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        stats["sent"] += 1
        producer.poll(0)
        if stats["fatal"]:
            raise Aborted(f"fatal producer error: {stats['fatal']}")
        if time.monotonic() - last_progress >= 1:
            last_progress = time.monotonic()
            say(f"progress sent={stats['sent']} acked={stats['acked']} failed={stats['failed']}")
    deadline = time.monotonic() + 660
    while len(producer) > 0:
        producer.flush(1)
        if stats["fatal"]:
            raise Aborted(f"fatal producer error: {stats['fatal']}")
        if time.monotonic() > deadline:
            raise Aborted(f"{len(producer)} records still undelivered after 660s")
        say(f"progress sent={stats['sent']} acked={stats['acked']} failed={stats['failed']}")
    if stats["first_failure"]:
        say(f"first failed send: {stats['first_failure']}")
    if stats["first_no_offset"]:
        say(f"first record acknowledged without an offset: {stats['first_no_offset']}")
    return stats


def verify(args, acked_offset, stats):
    N, P = args.records, args.partitions
    count = [0] * N
    found_offset = [-1] * N
    last_acked = [-1] * P
    consumed = foreign = corrupted = reordered = 0
    examples = []

    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "client.id": "varve-fault-rdkafka-verifier",
        "group.id": f"varve-fault-verifier-unused-{time.time_ns()}",  # required; never joined
        "enable.auto.commit": False,
        "isolation.level": "read_uncommitted",
        "auto.offset.reset": "earliest",
        "log_level": 3,
    })
    try:
        end = {}
        for p in range(P):
            _, high = c.get_watermark_offsets(TopicPartition(args.topic, p), timeout=60)
            end[p] = high
        say(f"end offsets {end}")
        c.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in range(P)])
        position = {p: 0 for p in range(P)}
        deadline = time.monotonic() + args.consume_timeout_s
        while any(position[p] < end[p] for p in range(P)):
            if time.monotonic() > deadline:
                raise Aborted(f"reading back did not reach the end offsets within "
                              f"{args.consume_timeout_s}s: positions {position}, end {end}")
            for m in c.consume(num_messages=5000, timeout=0.5):
                if m.error() is not None:
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        say(f"consume error: {m.error()}")
                    continue
                consumed += 1
                p, off = m.partition(), m.offset()
                position[p] = max(position[p], off + 1)
                try:
                    i = int(m.value())
                except (TypeError, ValueError):
                    i = -1
                if not 0 <= i < N:
                    foreign += 1
                    continue
                key = m.key().decode() if m.key() is not None else None
                if p != i % P or key != str(i // P):
                    corrupted += 1
                    if len(examples) < 10:
                        examples.append(f"value {i} at {p}@{off} with key {key}")
                count[i] += 1
                if count[i] == 1:
                    found_offset[i] = off
                    if acked_offset[i] != NOT_ACKED and p == i % P:
                        if i <= last_acked[p]:
                            reordered += 1
                            if len(examples) < 10:
                                examples.append(f"value {i} at {p}@{off} after value {last_acked[p]}")
                        last_acked[p] = i
    finally:
        c.close()

    acknowledged = lost = duplicated = misplaced = unacked_present = 0
    for i in range(N):
        if count[i] > 1:
            duplicated += count[i] - 1
            if len(examples) < 10:
                examples.append(f"value {i} read {count[i]} times")
        off = acked_offset[i]
        if off == NOT_ACKED:
            if count[i] > 0:
                unacked_present += 1
            continue
        acknowledged += 1
        if count[i] == 0:
            lost += 1
            if len(examples) < 10:
                examples.append(f"lost value {i} acknowledged at {i % P}@{off}")
        elif off != ACKED_NO_OFFSET and found_offset[i] != off:
            misplaced += 1
            if len(examples) < 10:
                examples.append(f"value {i} acknowledged at offset {off}, read at {found_offset[i]}")
    for e in examples:
        say(f"  {e}")
    say(f"acknowledged={acknowledged} lost={lost} duplicated={duplicated} misplaced={misplaced} "
        f"reordered={reordered} failed={stats['failed']} misrouted={stats['misrouted']} "
        f"corrupted={corrupted} foreign={foreign} unacknowledged_present={unacked_present} "
        f"acknowledged_without_offset={stats['acked_no_offset']} consumed={consumed}")
    ok = (lost == duplicated == misplaced == reordered == corrupted == foreign == 0
          and stats["failed"] == 0 and stats["misrouted"] == 0 and acknowledged == N)
    say("RESULT PASS" if ok else "RESULT FAIL")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--rate", type=float, default=0.0, help="records per second (0: unpaced)")
    ap.add_argument("--consume-timeout-s", type=int, default=180)
    args = ap.parse_args()
    control = Control()
    acked_offset = [NOT_ACKED] * args.records
    try:
        stats = produce(args, control, acked_offset)
        say(f"produced records={args.records} acknowledged={stats['acked']} failed={stats['failed']}")
        control.wait_verify()
        return verify(args, acked_offset, stats)
    except Aborted as e:
        sys.stdout.flush()
        print(f"ABORT: {e}", file=sys.stderr, flush=True)
        return 3


if __name__ == "__main__":
    sys.exit(main())
