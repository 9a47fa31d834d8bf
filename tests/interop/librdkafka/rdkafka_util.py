"""confluent-kafka (librdkafka) helpers shared by the librdkafka interop tests."""

import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

from varve_interop import bootstrap


class ClientErrors:
    """Collects librdkafka error_cb events (connection, coordinator, ...) for the report."""

    def __init__(self, name):
        self.name = name
        self.events = []

    def __call__(self, err):
        self.events.append(str(err))

    def report(self):
        if self.events:
            uniq = sorted(set(self.events))
            print("%s: %d client error events (%d distinct):\n  %s" % (
                self.name, len(self.events), len(uniq), "\n  ".join(uniq[:15])), flush=True)


def create_topic(name, partitions=3, timeout=30.0):
    # Topics are always created explicitly: a Metadata request must never auto-create one
    # (that would hide a CreateTopics that did not take effect).
    admin = AdminClient({"bootstrap.servers": bootstrap(), "allow.auto.create.topics": False})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions,
                                            replication_factor=1)],
                                  operation_timeout=timeout, request_timeout=timeout)
    futures[name].result(timeout=timeout)  # raises KafkaException on failure
    # The metadata must show the partitions before producing with explicit partitions.
    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(topic=name, timeout=10)
        t = md.topics.get(name)
        if t is not None and t.error is None and len(t.partitions) == partitions \
                and all(p.leader >= 0 for p in t.partitions.values()):
            break
        assert time.monotonic() < deadline, "topic %s not visible with %d partitions: %r" % (
            name, partitions, t and (t.error, list(t.partitions)))
        time.sleep(0.2)
    # ListOffsets answered by every partition's leader: the partitions are ready to take
    # acks=0 writes (which a not-yet-ready leader would drop silently).
    probe = Consumer({"bootstrap.servers": bootstrap(), "group.id": "varve-interop-probe"})
    try:
        while True:
            try:
                for p in range(partitions):
                    probe.get_watermark_offsets(TopicPartition(name, p), timeout=5)
                return
            except KafkaException as e:
                assert time.monotonic() < deadline, "%s: ListOffsets still failing: %s" % (name, e)
                time.sleep(0.2)
    finally:
        probe.close()


def produce(topic, records, config, flush_timeout=120.0, on_progress=None):
    """Produces records (dicts from make_records); fills in partition/offset from each delivery
    report. Returns (acked, failed) lists; acked is in produce() order."""
    errors = ClientErrors("producer[%s]" % topic)
    conf = {"bootstrap.servers": bootstrap(), "error_cb": errors,
            "allow.auto.create.topics": False}
    conf.update(config)
    producer = Producer(conf)
    status = {}

    def make_cb(idx):
        def cb(err, msg):
            status[idx] = (err, msg.partition(), msg.offset())
        return cb

    for n, rec in enumerate(records):
        kwargs = {"key": rec["key"], "value": rec["value"], "headers": rec["headers"],
                  "timestamp": rec["timestamp"], "on_delivery": make_cb(n)}
        if rec.get("partition") is not None:
            kwargs["partition"] = rec["partition"]
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.05)
        if n % 200 == 0:
            producer.poll(0)
            if on_progress:
                on_progress(n, status)
    remaining = producer.flush(flush_timeout)
    errors.report()
    assert remaining == 0, "%s: %d messages still undelivered after %.0fs flush" % (
        topic, remaining, flush_timeout)
    acked, failed = [], []
    for n, rec in enumerate(records):
        err, part, off = status.get(n, ("no delivery report", None, None))
        out = dict(rec, topic=topic, partition=part, offset=off)
        if err is None:
            acked.append(out)
        else:
            failed.append((out, err))
    return acked, failed


def watermarks(consumer, topic, partitions, expect_total=None, settle_timeout=30.0):
    """High watermark per partition (log start offsets must be 0). With expect_total, waits
    (bounded) until the watermarks add up to it: acks=0 delivery reports fire when a request
    is sent, before the broker has appended it."""
    deadline = time.monotonic() + settle_timeout
    while True:
        high = {}
        for p in range(partitions):
            low, hi = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            assert low == 0, "%s/%d: log start offset %d, expected 0" % (topic, p, low)
            high[p] = hi
        if expect_total is None or sum(high.values()) >= expect_total:
            return high
        if time.monotonic() >= deadline:
            print("%s: high watermarks %r add up to %d < %d expected after %.0fs" % (
                topic, high, sum(high.values()), expect_total, settle_timeout), flush=True)
            return high
        time.sleep(0.2)


def consume_all(topic, partitions=3, timeout=120.0, group_id="varve-interop-unused",
                expect_total=None, settle_timeout=30.0):
    """Reads every partition from the beginning with assign() (no group membership, no
    commits) until each reaches its high watermark. Returns consumed record dicts."""
    errors = ClientErrors("consumer[%s]" % topic)
    consumer = Consumer({
        "bootstrap.servers": bootstrap(),
        "group.id": group_id,            # required by the API; no subscribe(), no commits
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "error_cb": errors,
    })
    try:
        tps = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]
        consumer.assign(tps)
        high = watermarks(consumer, topic, partitions, expect_total, settle_timeout)
        out = []
        next_off = {p: 0 for p in range(partitions)}
        deadline = time.monotonic() + timeout
        while any(next_off[p] < high[p] for p in range(partitions)):
            assert time.monotonic() < deadline, (
                "%s: consume timed out after %.0fs at %r, high watermarks %r" % (
                    topic, timeout, next_off, high))
            msgs = consumer.consume(num_messages=1000, timeout=0.5)
            for m in msgs:
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError("%s: consumer error: %s" % (topic, m.error()))
                ts_type, ts = m.timestamp()
                assert ts_type == 1, "%s/%d@%d: timestamp type %d, expected CreateTime" % (
                    topic, m.partition(), m.offset(), ts_type)
                out.append({"topic": m.topic(), "partition": m.partition(), "offset": m.offset(),
                            "key": m.key(), "value": m.value(),
                            "headers": m.headers() or [], "timestamp": ts})
                next_off[m.partition()] = m.offset() + 1
        errors.report()
        return out
    finally:
        consumer.close()
