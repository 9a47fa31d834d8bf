"""KIP-890 part 1 over the raw protocol (tests/e2e/kwire.py) against one broker at
$VARVE_BOOTSTRAP: a transactional batch for a partition the producer never added to its
transaction (AddPartitionsToTxn) is refused with INVALID_TXN_STATE (Produce v3 predates
TRANSACTION_ABORTABLE) and nothing is written; once the partition is added, the same batch is
appended. The same for TxnOffsetCommit before and after AddOffsetsToTxn."""
import os
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import kwire as kw  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

BOOTSTRAP = os.environ["VARVE_BOOTSTRAP"]
API_PRODUCE, API_INIT_PRODUCER_ID, API_ADD_PARTITIONS_TO_TXN = 0, 22, 24
INVALID_TXN_STATE = 48
RETRIABLE = {14, 15, 16}  # COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR


def txn_batch(pid, epoch, seq, values):
    """A v2 batch of producer pid/epoch starting at sequence seq, transactional (bit 4)."""
    ts = int(time.time() * 1000)
    recs = b"".join(kw.record(i, 0, None, v) for i, v in enumerate(values))
    after_crc = (kw.i16(0x10) + kw.i32(len(values) - 1) + kw.i64(ts) + kw.i64(ts) +
                 kw.i64(pid) + kw.i16(epoch) + kw.i32(seq) + kw.i32(len(values)) + recs)
    rest = kw.i32(0) + kw.i8(2) + kw.u32(kw.crc32c(after_crc)) + after_crc
    return kw.i64(0) + kw.i32(len(rest)) + rest


def init_producer_id(conn, tid):
    deadline = time.monotonic() + 60
    while True:
        r = conn.request(API_INIT_PRODUCER_ID, 1, kw.string(tid) + kw.i32(60000))
        r.i32()  # throttle
        err, pid, epoch = r.i16(), r.i64(), r.i16()
        if err == 0:
            return pid, epoch
        assert err in RETRIABLE and time.monotonic() < deadline, f"InitProducerId error {err}"
        time.sleep(0.2)


def add_partition(conn, tid, pid, epoch, topic, partition):
    body = (kw.string(tid) + kw.i64(pid) + kw.i16(epoch) +
            kw.array([topic], lambda t: kw.string(t) + kw.array([partition], kw.i32)))
    r = conn.request(API_ADD_PARTITIONS_TO_TXN, 1, body)
    r.i32()
    results = r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i16()))))
    return results[0][1][0][1]


def produce(conn, tid, topic, partition, batch):
    body = (kw.string(tid) + kw.i16(-1) + kw.i32(10000) +
            kw.array([topic], lambda t: kw.string(t) + kw.array(
                [partition], lambda p: kw.i32(p) + kw.nbytes(batch))))
    r = conn.request(API_PRODUCE, 3, body)
    topics = r.array(lambda r: (r.string(), r.array(
        lambda r: dict(index=r.i32(), error=r.i16(), base_offset=r.i64(), append_time=r.i64()))))
    return topics[0][1][0]


def test_unverified_transactional_write_is_refused_then_accepted_once_added():
    topic = "verify-" + uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        f.result(60)
    tid = "verify-" + uuid.uuid4().hex[:8]
    conn = kw.Conn(BOOTSTRAP)
    try:
        pid, epoch = init_producer_id(conn, tid)
        batch = txn_batch(pid, epoch, 0, [b"never-added"])
        out = produce(conn, tid, topic, 0, batch)
        assert out["error"] == INVALID_TXN_STATE, out
        assert conn.list_offsets_v1(topic, 0)["offset"] == 0, "a refused batch was written"

        assert add_partition(conn, tid, pid, epoch, topic, 0) == 0
        out = produce(conn, tid, topic, 0, txn_batch(pid, epoch, 0, [b"added"]))
        assert out["error"] == 0, out
        assert out["base_offset"] == 0
    finally:
        conn.close()


API_FIND_COORDINATOR, API_ADD_OFFSETS_TO_TXN, API_TXN_OFFSET_COMMIT = 10, 25, 28


def wait_group_coordinator(conn, group):
    """FindCoordinator (v1) until it answers: the first call creates __consumer_offsets."""
    deadline = time.monotonic() + 60
    while True:
        r = conn.request(API_FIND_COORDINATOR, 1, kw.string(group) + kw.i8(0))
        r.i32()
        err = r.i16()
        if err == 0:
            return
        assert err in RETRIABLE and time.monotonic() < deadline, f"FindCoordinator error {err}"
        time.sleep(0.2)


def txn_offset_commit(conn, tid, group, pid, epoch, topic, partition, offset):
    """TxnOffsetCommit v2; returns the partition's error code."""
    body = (kw.string(tid) + kw.string(group) + kw.i64(pid) + kw.i16(epoch) +
            kw.array([topic], lambda t: kw.string(t) + kw.array(
                [partition], lambda p: kw.i32(p) + kw.i64(offset) + kw.i32(-1) + kw.string("m"))))
    r = conn.request(API_TXN_OFFSET_COMMIT, 2, body)
    r.i32()
    topics = r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i16()))))
    return topics[0][1][0][1]


def add_offsets(conn, tid, pid, epoch, group):
    r = conn.request(API_ADD_OFFSETS_TO_TXN, 1,
                     kw.string(tid) + kw.i64(pid) + kw.i16(epoch) + kw.string(group))
    r.i32()
    return r.i16()


def test_txn_offset_commit_outside_the_transaction_is_refused_then_accepted_once_added():
    """KIP-890 part 1 for TxnOffsetCommit (KAFKA-15449): the group's __consumer_offsets
    partition must be in the ongoing transaction (AddOffsetsToTxn), or a delayed commit could
    land in a later transaction."""
    topic = "verify-offsets-" + uuid.uuid4().hex[:8]
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        f.result(60)
    tid, group = "verify-" + uuid.uuid4().hex[:8], "verify-group-" + uuid.uuid4().hex[:8]
    conn = kw.Conn(BOOTSTRAP)
    try:
        wait_group_coordinator(conn, group)
        pid, epoch = init_producer_id(conn, tid)
        # A transaction is open (a partition was added), but not for the group's offsets.
        assert add_partition(conn, tid, pid, epoch, topic, 0) == 0
        assert txn_offset_commit(conn, tid, group, pid, epoch, topic, 0, 5) == INVALID_TXN_STATE

        deadline = time.monotonic() + 60
        while (err := add_offsets(conn, tid, pid, epoch, group)) != 0:
            assert err in RETRIABLE | {51} and time.monotonic() < deadline, f"AddOffsetsToTxn {err}"
            time.sleep(0.2)  # 51: CONCURRENT_TRANSACTIONS
        assert txn_offset_commit(conn, tid, group, pid, epoch, topic, 0, 5) == 0
    finally:
        conn.close()
