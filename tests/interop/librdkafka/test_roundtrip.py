"""interop_librdkafka_roundtrip: confluent-kafka (librdkafka) produces under every codec and
acks level, then reads everything back from the beginning with assign(); every key, value,
header, CreateTime timestamp, partition and acknowledged offset must survive."""

import time

import pytest

from rdkafka_util import consume_all, create_topic, produce
from varve_interop import make_records, unique_topic, verify_roundtrip

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
ACKS = ["0", "1", "all"]
PER_COMBINATION = 3334  # x3 acks levels = 10,002 records per codec


@pytest.mark.parametrize("acks", ACKS)
@pytest.mark.parametrize("codec", CODECS)
def test_produce_then_consume_preserves_every_record(codec, acks):
    topic = unique_topic("rdk-%s-acks%s" % (codec, acks))
    create_topic(topic, partitions=3)
    records = make_records(PER_COMBINATION, seed=CODECS.index(codec) * 10 + ACKS.index(acks),
                           topic_tag="%s/%s" % (codec, acks),
                           base_timestamp_ms=int(time.time() * 1000) - 3_600_000)
    acked, failed = produce(topic, records, {
        "compression.type": codec,
        "acks": acks,
        "enable.idempotence": False,
        "linger.ms": 5,
        "batch.num.messages": 500,
        "message.timeout.ms": 60000,
    })
    assert not failed, "%s: %d delivery failures, first: %s" % (
        topic, len(failed), [(r["key"], str(e)) for r, e in failed[:5]])
    known_offsets = acks != "0"
    if known_offsets:
        assert all(r["offset"] >= 0 for r in acked), "delivery report without offset"
    explicit = [r for r in acked if r["index"] % 4 == 0]
    assert all(r["partition"] == r["index"] % 3 for r in explicit), \
        "a record with an explicit partition was acknowledged on another partition"
    consumed = consume_all(topic, partitions=3, expect_total=len(acked))
    verify_roundtrip(acked, consumed, known_offsets, 3,
                     "librdkafka codec=%s acks=%s" % (codec, acks))


def test_idempotent_producer_roundtrip():
    """enable.idempotence=true (acks=all, InitProducerId, sequence numbers) under zstd."""
    topic = unique_topic("rdk-idempotent")
    create_topic(topic, partitions=3)
    records = make_records(3000, seed=4242, topic_tag="idempotent",
                           base_timestamp_ms=int(time.time() * 1000) - 7_200_000)
    acked, failed = produce(topic, records, {
        "compression.type": "zstd",
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "batch.num.messages": 500,
        "message.timeout.ms": 60000,
    })
    assert not failed, "%s: %d delivery failures, first: %s" % (
        topic, len(failed), [(r["key"], str(e)) for r, e in failed[:5]])
    consumed = consume_all(topic, partitions=3)
    verify_roundtrip(acked, consumed, True, 3, "librdkafka idempotent acks=all")
