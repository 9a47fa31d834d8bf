"""interop_kafka_python_roundtrip: kafka-python (pure Python client) creates topics with
KafkaAdminClient, produces under every codec and acks level, then reads everything back with
a group-less KafkaConsumer (assign + seek_to_beginning). Every key, value, header, CreateTime
timestamp, partition and acknowledged offset must survive.

kafka-python's producer is idempotent by default; the acks=all runs keep that default
(InitProducerId + sequence numbers), acks=0/1 runs turn it off as they must.
"""

import os
import sys
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "librdkafka"))
from varve_interop import bootstrap, make_records, unique_topic, verify_roundtrip  # noqa: E402

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]
ACKS = [0, 1, "all"]
PER_COMBINATION = 3334  # x3 acks levels = 10,002 records per codec
PARTITIONS = 3


def create_topic(name, timeout=30.0):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap(), client_id="varve-interop-admin",
                             request_timeout_ms=30000)
    try:
        result = admin.create_topics(
            {name: {"num_partitions": PARTITIONS, "replication_factor": 1}},
            timeout_ms=int(timeout * 1000), wait_for_metadata=True)
        errors = [(t.get("name"), t.get("error_code")) for t in result.get("topics", [])
                  if t.get("error_code")]
        assert not errors, "CreateTopics errors: %r" % errors
    finally:
        admin.close()
    # ListOffsets answered by every partition's leader before acks=0 writes are sent.
    probe = KafkaConsumer(bootstrap_servers=bootstrap(), group_id=None,
                          enable_auto_commit=False)
    deadline = time.monotonic() + timeout
    try:
        tps = [TopicPartition(name, p) for p in range(PARTITIONS)]
        while True:
            try:
                probe.end_offsets(tps, timeout_ms=5000)
                return
            except KafkaError as e:
                assert time.monotonic() < deadline, "%s: ListOffsets still failing: %r" % (name, e)
                time.sleep(0.2)
    finally:
        probe.close()


def produce(topic, records, codec, acks):
    config = dict(bootstrap_servers=bootstrap(), acks=acks, compression_type=codec,
                  linger_ms=5, batch_size=64 * 1024, request_timeout_ms=30000,
                  delivery_timeout_ms=60000)
    if acks != "all":
        config["enable_idempotence"] = False
    producer = KafkaProducer(**config)
    futures = []
    try:
        for rec in records:
            futures.append(producer.send(topic, key=rec["key"], value=rec["value"],
                                         headers=rec["headers"], partition=rec["partition"],
                                         timestamp_ms=rec["timestamp"]))
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=30)
    acked, failed = [], []
    for rec, fut in zip(records, futures):
        try:
            md = fut.get(timeout=0)
        except Exception as e:  # delivery failure: reported below
            failed.append((rec, e))
            continue
        acked.append(dict(rec, topic=topic, partition=md.partition, offset=md.offset))
    return acked, failed


def consume_all(topic, expect_total, timeout=120.0, settle_timeout=30.0):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap(), group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             max_poll_records=2000)
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        # acks=0 "acknowledges" on send: wait (bounded) until the broker has appended all.
        deadline = time.monotonic() + settle_timeout
        while True:
            end = consumer.end_offsets(tps, timeout_ms=10000)
            if sum(end.values()) >= expect_total or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        begin = consumer.beginning_offsets(tps, timeout_ms=10000)
        assert all(v == 0 for v in begin.values()), "log start offsets %r, expected 0" % begin
        out = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, "%s: consume timed out at %r of %r" % (
                topic, {tp.partition: consumer.position(tp) for tp in tps},
                {tp.partition: end[tp] for tp in tps})
            for tp, msgs in consumer.poll(timeout_ms=500).items():
                for m in msgs:
                    assert m.timestamp_type == 0, "%s/%d@%d: timestamp type %d, not CreateTime" % (
                        topic, m.partition, m.offset, m.timestamp_type)
                    out.append({"topic": m.topic, "partition": m.partition, "offset": m.offset,
                                "key": m.key, "value": m.value, "headers": list(m.headers),
                                "timestamp": m.timestamp})
        return out
    finally:
        consumer.close()


@pytest.mark.parametrize("acks", ACKS)
@pytest.mark.parametrize("codec", CODECS)
def test_produce_then_consume_preserves_every_record(codec, acks):
    codec_name = codec or "none"
    topic = unique_topic("kpy-%s-acks%s" % (codec_name, acks))
    create_topic(topic)
    records = make_records(PER_COMBINATION, seed=100 + CODECS.index(codec) * 10 + ACKS.index(acks),
                           topic_tag="%s/%s" % (codec_name, acks),
                           base_timestamp_ms=int(time.time() * 1000) - 3_600_000,
                           null_headers=False)  # KafkaProducer.send() refuses None values
    acked, failed = produce(topic, records, codec, acks)
    assert not failed, "%s: %d delivery failures, first: %s" % (
        topic, len(failed), [(r["key"], repr(e)) for r, e in failed[:5]])
    known_offsets = acks != 0
    if known_offsets:
        assert all(r["offset"] >= 0 for r in acked), "delivery metadata without offset"
    assert all(r["partition"] == r["index"] % 3 for r in acked if r["index"] % 4 == 0), \
        "a record with an explicit partition was acknowledged on another partition"
    consumed = consume_all(topic, expect_total=len(acked))
    verify_roundtrip(acked, consumed, known_offsets, PARTITIONS,
                     "kafka-python codec=%s acks=%s" % (codec_name, acks))
