"""Clean (SIGTERM) and unclean (SIGKILL) restarts keep every acknowledged record, and every
batch in every segment file passes a CRC-32C scan afterwards. Default flush policy: after a
process kill the data is still in the page cache."""
import os
import time

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient

import kwire
from e2e_util import bootstrap, create_topic, env, restart, unique

PARTITIONS = 3


def produce(topic, start, count):
    """Produces keyed records start..start+count-1 with acks=all; returns {(p, off): (k, v)}."""
    p = Producer({"bootstrap.servers": bootstrap(), "acks": "all", "linger.ms": 10,
                  "batch.size": 16384, "compression.type": "none"})
    acked, errors = {}, []

    def cb(err, msg):
        if err:
            errors.append(err)
        else:
            acked[(msg.partition(), msg.offset())] = (msg.key(), msg.value())

    for i in range(start, start + count):
        key = b"key-%06d" % i
        value = b"value-%06d-" % i + bytes([i % 251]) * (i % 300)
        while True:
            try:
                p.produce(topic, key=key, value=value, timestamp=1_700_000_000_000 + i,
                          on_delivery=cb)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    left = p.flush(60)
    assert left == 0, f"{left} records not acknowledged within 60s"
    assert not errors, f"{len(errors)} delivery errors, first: {errors[0]}"
    assert len(acked) == count
    return acked


def consume_all(topic, expected_count, timeout=60):
    c = Consumer({"bootstrap.servers": bootstrap(), "group.id": unique("e2e-restart"),
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "enable.partition.eof": False})
    got = {}
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        deadline = time.monotonic() + timeout
        while len(got) < expected_count and time.monotonic() < deadline:
            for m in c.consume(1000, 1.0):
                assert not m.error(), f"consume error: {m.error()}"
                k = (m.partition(), m.offset())
                assert k not in got, f"record {k} delivered twice"
                got[k] = (m.key(), m.value())
    finally:
        c.close()
    return got


def check_all_present(acked, got, when):
    missing = [k for k in acked if k not in got]
    wrong = [k for k in acked if k in got and got[k] != acked[k]]
    extra = [k for k in got if k not in acked]
    print(f"{when}: acknowledged={len(acked)} consumed={len(got)} missing={len(missing)} "
          f"mismatches={len(wrong)} extra={len(extra)}")
    assert not missing, f"{when}: {len(missing)} acknowledged records missing, e.g. {sorted(missing)[:5]}"
    assert not wrong, f"{when}: {len(wrong)} records differ, e.g. {sorted(wrong)[:5]}"
    assert not extra, f"{when}: {len(extra)} records nobody acknowledged, e.g. {sorted(extra)[:5]}"
    for p in range(PARTITIONS):
        offs = sorted(o for (pp, o) in acked if pp == p)
        assert offs == list(range(len(offs))), f"{when}: partition {p} offsets not contiguous from 0"


def crc_scan(topic):
    data = env("VARVE_DATA_DIR")
    total_batches = total_records = 0
    problems = []
    for p in range(PARTITIONS):
        d = os.path.join(data, f"{topic}-{p}")
        for name in sorted(os.listdir(d)):
            if name.endswith(".log"):
                b, r, probs = kwire.scan_log_file(os.path.join(d, name))
                total_batches += b
                total_records += r
                problems += probs
    assert not problems, "segment scan found problems:\n" + "\n".join(problems[:20])
    return total_batches, total_records


def test_sigterm_then_sigkill_restart_keep_every_acknowledged_record():
    topic = unique("e2e-restart")
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    create_topic(admin, topic, PARTITIONS)
    del admin

    acked = produce(topic, 0, 2000)
    restart()  # SIGTERM
    got = consume_all(topic, len(acked))
    check_all_present(acked, got, "after SIGTERM restart")

    # appends continue at the right offsets after a clean restart
    more = produce(topic, 2000, 2000)
    assert not set(more) & set(acked), "offsets reused after restart"
    acked.update(more)

    restart("kill")  # SIGKILL: no flush, no clean shutdown marker
    got = consume_all(topic, len(acked))
    check_all_present(acked, got, "after SIGKILL restart")

    batches, records = crc_scan(topic)
    assert records == len(acked), f"segment files hold {records} records, {len(acked)} acknowledged"
    print(f"crc scan: {batches} batches, {records} records, all CRCs valid")

    # and the log stays appendable after crash recovery
    tail = produce(topic, 4000, 300)
    acked.update(tail)
    got = consume_all(topic, len(acked))
    check_all_present(acked, got, "after appending post-crash")
    crc_scan(topic)
