"""Log compaction end to end with confluent-kafka (librdkafka) against a real broker.

Runs under tests/lib/with_broker.sh (VARVE_BOOTSTRAP, VARVE_DATA_DIR). The broker's
housekeeping runs every second and drives the cleaner."""
import os
import re
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

KEYS = 50
DELETED = 10          # keys k00..k09 get a tombstone at the end
ROUNDS = 20
DELETE_RETENTION_MS = 1000


def env(name):
    value = os.environ.get(name)
    assert value, f"{name} is not set: run this test through tests/lib/with_broker.sh"
    return value


def bootstrap():
    return env("VARVE_BOOTSTRAP")


def unique(prefix):
    return f"{prefix}-{os.getpid()}-{int(time.time() * 1000) % 10_000_000}"


def create_topic(name, config):
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    fs = admin.create_topics([NewTopic(name, 1, 1, config=config)], operation_timeout=30,
                             request_timeout=30)
    fs[name].result(timeout=30)


def produce(topic, messages):
    """Produces (key, value) pairs in order to partition 0; returns the delivered offsets."""
    p = Producer({"bootstrap.servers": bootstrap(), "acks": "all", "linger.ms": 2,
                  "batch.size": 2000, "compression.type": "lz4",
                  "enable.idempotence": False, "max.in.flight.requests.per.connection": 1,
                  "message.timeout.ms": 30000})
    results = [None] * len(messages)

    def on_delivery(i):
        def cb(err, msg):
            results[i] = err if err else msg.offset()
        return cb

    for i, (key, value) in enumerate(messages):
        while True:
            try:
                p.produce(topic, key=key, value=value, partition=0, on_delivery=on_delivery(i))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(60) == 0, "records not delivered within 60s"
    return results


def consume_all(topic, idle_seconds=3.0, timeout=30.0):
    """Every record from the beginning until nothing arrives for idle_seconds (a compacted
    log may end below the high watermark, so the high watermark is no stopping point)."""
    c = Consumer({"bootstrap.servers": bootstrap(), "group.id": unique("compaction"),
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "fetch.wait.max.ms": 200})
    out = []
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last < idle_seconds:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise AssertionError(f"consume error: {m.error()}")
            out.append((m.offset(), m.key(), m.value()))
            last = time.monotonic()
        return out
    finally:
        c.close()


def segment_count(topic):
    d = os.path.join(env("VARVE_DATA_DIR"), f"{topic}-0")
    return len([n for n in os.listdir(d) if re.fullmatch(r"\d{20}\.log", n)])


def key(i):
    return b"k%02d" % i


def test_compaction_keeps_newest_value_per_key_and_drops_deleted_keys():
    topic = unique("compacted")
    create_topic(topic, {"cleanup.policy": "compact", "segment.bytes": "4096",
                         "segment.ms": "2000",  # rolls the tail so it becomes cleanable
                         "min.cleanable.dirty.ratio": "0.01",
                         "delete.retention.ms": str(DELETE_RETENTION_MS)})
    messages = []
    for r in range(ROUNDS):
        for i in range(KEYS):
            messages.append((key(i), b"round-%02d-key-%02d-" % (r, i) + b"x" * 40))
    messages += [(key(i), None) for i in range(DELETED)]
    offsets = produce(topic, messages)
    errors = [o for o in offsets if not isinstance(o, int)]
    assert not errors, f"delivery errors: {errors[:5]}"
    assert offsets == list(range(len(messages))), "offsets are not 0..n-1 in produce order"

    newest = {}
    for (k, v), off in zip(messages, offsets):
        newest[k] = (off, v)
    live = {k: ov for k, ov in newest.items() if ov[1] is not None}
    assert len(live) == KEYS - DELETED

    def state():
        got = consume_all(topic)
        seen = {}
        for off, k, v in got:
            seen.setdefault(k, []).append((off, v))
        return got, seen

    deadline = time.monotonic() + 60
    tombstones_seen = False
    while True:
        got, seen = state()
        # Whatever the cleaner has done so far, no acknowledged newest value may be missing.
        for k, (off, v) in live.items():
            assert (off, v) in seen.get(k, []), f"newest value of {k} at offset {off} missing"
        offsets_seen = [o for o, _, _ in got]
        assert offsets_seen == sorted(set(offsets_seen)), "offsets not strictly increasing"
        if any(v is None for _, _, v in got):
            tombstones_seen = True
        done = len(got) == len(live) and all(len(seen.get(k, [])) == 1 for k in live)
        if done or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert done, (f"after 60s: {len(got)} records, expected exactly one per live key "
                  f"({len(live)}); deleted keys still present: "
                  f"{sorted(k for k in seen if k not in live)}")
    for off, k, v in got:
        assert k in live, f"deleted key {k} still present at offset {off}"
        assert (off, v) == live[k], f"{k}: got offset {off}, expected {live[k][0]}"
    # ~60 KB were written in 4 KB segments; what survives fits one merged segment (plus the
    # active one and at most one not merged yet).
    assert segment_count(topic) <= 3, f"{segment_count(topic)} segments: small segments not merged"
    # The log end is unchanged: offsets are never reassigned.
    c = Consumer({"bootstrap.servers": bootstrap(), "group.id": unique("wm")})
    try:
        low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
    finally:
        c.close()
    assert high == len(messages)
    # (tombstones_seen is informational: the first pass may already be followed by the
    # second one before we look.)
    print(f"tombstones observed before removal: {tombstones_seen}")


def test_keyless_record_on_compacted_topic_fails_with_invalid_record():
    topic = unique("compacted-nokey")
    create_topic(topic, {"cleanup.policy": "compact"})
    result = produce(topic, [(None, b"no key")])[0]
    assert isinstance(result, KafkaError), f"keyless record was accepted at offset {result}"
    assert result.code() == KafkaError.INVALID_RECORD, f"unexpected error {result}"
    # A keyed record on the same topic is fine.
    assert produce(topic, [(b"k", b"v")]) == [0]
