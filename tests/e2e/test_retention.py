"""Retention, DeleteRecords and dynamic topic configs with confluent-kafka (librdkafka).

Expects the broker to run with log.retention.check.interval.ms=1000 (VARVE_OVERRIDES)."""
import os
import re
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, ResourceType)

from e2e_util import bootstrap, create_topic, env, restart, unique, wait_until, log_tail

SEGMENT_BYTES = 16384
RETENTION_BYTES = 65536


def admin():
    return AdminClient({"bootstrap.servers": bootstrap()})


def watermarks(topic, partition=0):
    c = Consumer({"bootstrap.servers": bootstrap(), "group.id": "e2e-unused",
                  "enable.auto.commit": False})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()


def segment_base_offsets(topic, partition=0):
    d = os.path.join(env("VARVE_DATA_DIR"), f"{topic}-{partition}")
    names = [n for n in os.listdir(d) if re.fullmatch(r"\d{20}\.log", n)]
    return sorted(int(n[:20]) for n in names)


def produce(topic, count, size, batch_bytes=4000):
    p = Producer({"bootstrap.servers": bootstrap(), "acks": "all", "linger.ms": 5,
                  "batch.size": batch_bytes, "compression.type": "none",
                  "enable.idempotence": False})
    acked, errors = [], []

    def cb(err, msg):
        (errors if err else acked).append(err or msg.offset())

    for i in range(count):
        value = (b"%08d" % i) * (size // 8)
        while True:
            try:
                p.produce(topic, value=value, key=b"k%d" % i, partition=0, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    left = p.flush(60)
    assert left == 0, f"{left} records not delivered within 60s"
    assert not errors, f"delivery errors: {errors[:5]}"
    assert len(acked) == count
    return sorted(acked)


def first_consumed_offset(topic):
    c = Consumer({"bootstrap.servers": bootstrap(), "group.id": unique("e2e-ret"),
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is None:
                continue
            assert not m.error(), f"consume error: {m.error()}"
            return m.offset()
        raise AssertionError("no record consumed from the beginning within 20s")
    finally:
        c.close()


def describe(topic):
    res = ConfigResource(ResourceType.TOPIC, topic)
    a = admin()  # keep the client alive until the future is resolved
    return a.describe_configs([res])[res].result(timeout=20)


def source_name(entry):
    src = entry.source
    return src.name if isinstance(src, ConfigSource) else ConfigSource(src).name


def test_size_retention_deletes_whole_segments_then_delete_records_survives_restart():
    topic = unique("e2e-retention")
    create_topic(admin(), topic, 1, {"segment.bytes": str(SEGMENT_BYTES),
                                     "retention.bytes": str(RETENTION_BYTES)})
    acked = produce(topic, 1000, 1000)  # ~1 MB
    assert acked == list(range(1000)), "acknowledged offsets are not 0..999"
    produced_bytes = 1000 * 1000
    at_least_rolled = produced_bytes // SEGMENT_BYTES  # segments the log must have rolled

    d = os.path.join(env("VARVE_DATA_DIR"), f"{topic}-0")

    def kept_bytes(bases):
        return sum(os.path.getsize(os.path.join(d, "%020d.log" % b)) for b in bases)

    def retention_done():
        # retention may have run during the produce; wait until it has caught up with all of it
        low, high = watermarks(topic)
        bases = segment_base_offsets(topic)
        settled = bases and bases[0] > 0 and kept_bytes(bases) <= RETENTION_BYTES + 2 * SEGMENT_BYTES
        return (low, high, bases) if low > 0 and settled else None

    low, high, bases = wait_until("size retention to trim the log to retention.bytes",
                                  retention_done, timeout=30, interval=0.5)
    assert high == 1000, f"high watermark {high}, expected 1000"
    assert len(bases) < at_least_rolled, \
        f"{len(bases)} segments remain; at least {at_least_rolled} were written"
    # whole segments only: the log start is the first remaining segment's base offset
    assert bases[0] == low, f"earliest offset {low} but first remaining segment starts at {bases[0]}"
    assert all(b > 0 for b in bases)
    # never trimmed below retention.bytes (a segment goes only if the rest still covers it)
    assert kept_bytes(bases) >= RETENTION_BYTES, f"only {kept_bytes(bases)} bytes kept"
    assert first_consumed_offset(topic) == low

    # DeleteRecords into the middle of a retained segment
    target = low + (high - low) // 2 + 3
    a = admin()
    fs = a.delete_records([TopicPartition(topic, 0, target)], operation_timeout=20,
                                request_timeout=20)
    for tp, f in fs.items():
        r = f.result(timeout=20)
        assert r.low_watermark == target, f"delete_records low watermark {r.low_watermark}, expected {target}"
    assert watermarks(topic) == (target, 1000)
    assert first_consumed_offset(topic) == target

    restart()  # SIGTERM
    low2, high2 = wait_until("watermarks after restart", lambda: watermarks(topic), timeout=30)
    assert (low2, high2) == (target, 1000), \
        f"after restart watermarks {(low2, high2)}, expected {(target, 1000)}"
    assert first_consumed_offset(topic) == target

    restart("kill")  # the log start offset must be durable across a crash too
    low3, high3 = wait_until("watermarks after kill", lambda: watermarks(topic), timeout=30)
    assert (low3, high3) == (target, 1000), \
        f"after SIGKILL restart watermarks {(low3, high3)}, expected {(target, 1000)}"


def test_incremental_alter_configs_is_dynamic_and_survives_restart():
    topic = unique("e2e-configs")
    create_topic(admin(), topic, 1, {"segment.bytes": "1048576"})
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("max.message.bytes", "200000", incremental_operation=AlterConfigOpType.SET),
    ])
    a = admin()
    a.incremental_alter_configs([res])[res].result(timeout=20)

    def check(cfg, when):
        for key, value in (("retention.ms", "3600000"), ("max.message.bytes", "200000"),
                           ("segment.bytes", "1048576")):
            e = cfg[key]
            assert e.value == value, f"{when}: {key}={e.value}, expected {value}"
            assert source_name(e) == "DYNAMIC_TOPIC_CONFIG", f"{when}: {key} source {source_name(e)}"
        e = cfg["cleanup.policy"]
        assert source_name(e) != "DYNAMIC_TOPIC_CONFIG", f"{when}: unset cleanup.policy is {source_name(e)}"

    check(describe(topic), "after alter")
    restart()
    cfg = wait_until("describe_configs after restart", lambda: describe(topic), timeout=30)
    check(cfg, "after restart")

    # DELETE returns a key to its default; that too survives a restart
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    a = admin()
    a.incremental_alter_configs([res])[res].result(timeout=20)
    e = describe(topic)["retention.ms"]
    assert source_name(e) != "DYNAMIC_TOPIC_CONFIG" and e.value == "604800000", \
        f"after DELETE retention.ms={e.value} source {source_name(e)}"
    restart("kill")
    e = wait_until("describe_configs after kill", lambda: describe(topic), timeout=30)["retention.ms"]
    assert source_name(e) != "DYNAMIC_TOPIC_CONFIG" and e.value == "604800000", \
        f"after DELETE + SIGKILL restart retention.ms={e.value} source {source_name(e)}"
    assert describe(topic)["max.message.bytes"].value == "200000"
