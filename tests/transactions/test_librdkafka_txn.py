"""librdkafka (confluent-kafka) transactional producer against one broker at
$VARVE_BOOTSTRAP (tests/lib/with_broker.sh): a committed transaction is visible to
read_committed consumers, an aborted one only to read_uncommitted consumers."""
import os
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BOOTSTRAP = os.environ["VARVE_BOOTSTRAP"]


def create_topic(name):
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic(name, 1, 1)]).values():
        f.result(60)


def read_all(topic, isolation, expected, quiet_s=4.0):
    c = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": "reader-" + uuid.uuid4().hex[:8],
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": isolation,
    })
    c.assign([TopicPartition(topic, 0, 0)])
    values, idle = [], 0.0
    try:
        while len(values) < expected or idle < 1.0:
            msg = c.poll(0.5)
            if msg is None:
                idle += 0.5
                if idle >= quiet_s:
                    break
                continue
            if msg.error():
                continue
            idle = 0.0
            values.append(msg.value().decode())
    finally:
        c.close()
    return values


def transactional_producer(tid):
    p = Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": tid,
                  "transaction.timeout.ms": 60000})
    p.init_transactions(60)
    return p


def test_librdkafka_commit_and_abort():
    topic = "rdk-txn-" + uuid.uuid4().hex[:8]
    create_topic(topic)
    p = transactional_producer("rdk-" + uuid.uuid4().hex[:8])
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, f"c1-{i}".encode())
    p.commit_transaction(60)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, f"a-{i}".encode())
    p.flush(30)
    p.abort_transaction(60)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, f"c2-{i}".encode())
    p.commit_transaction(60)

    committed = read_all(topic, "read_committed", 10)
    assert committed == [f"c1-{i}" for i in range(5)] + [f"c2-{i}" for i in range(5)]
    everything = read_all(topic, "read_uncommitted", 15)
    assert sorted(v for v in everything if v.startswith("a-")) == [f"a-{i}" for i in range(5)]
    assert len(everything) == 15


def test_librdkafka_second_producer_fences_the_first():
    topic = "rdk-fence-" + uuid.uuid4().hex[:8]
    create_topic(topic)
    tid = "rdk-fence-" + uuid.uuid4().hex[:8]
    zombie = transactional_producer(tid)
    zombie.begin_transaction()
    zombie.produce(topic, b"zombie")
    zombie.flush(30)
    fresh = transactional_producer(tid)  # fences the zombie, aborts its transaction
    fresh.begin_transaction()
    fresh.produce(topic, b"fresh")
    fresh.commit_transaction(60)
    failed = False
    try:
        zombie.commit_transaction(30)
    except Exception:  # KafkaException with a fatal/fenced error
        failed = True
    assert failed, "the fenced producer committed"
    assert read_all(topic, "read_committed", 1) == ["fresh"]


def test_txn_offsets_are_unstable_until_commit_then_visible():
    """TxnOffsetCommit offsets stay pending: a read_committed consumer's committed() (OffsetFetch
    with require_stable) gets UNSTABLE_OFFSET_COMMIT and retries until the transaction
    commits; afterwards it sees them. Offsets of an aborted transaction never appear."""
    topic = "rdk-offsets-" + uuid.uuid4().hex[:8]
    group = "rdk-group-" + uuid.uuid4().hex[:8]
    create_topic(topic)
    conf = {"bootstrap.servers": BOOTSTRAP, "group.id": group, "enable.auto.commit": False,
            "isolation.level": "read_committed"}
    c = Consumer(conf)
    tp = TopicPartition(topic, 0)
    try:
        p = transactional_producer("rdk-off-" + uuid.uuid4().hex[:8])
        # Aborted: offset 5 must never become the group's offset.
        p.begin_transaction()
        p.produce(topic, b"x")
        p.send_offsets_to_transaction([TopicPartition(topic, 0, 5)], c.consumer_group_metadata(), 30)
        p.abort_transaction(60)
        assert c.committed([tp], timeout=10)[0].offset < 0

        p.begin_transaction()
        p.produce(topic, b"y")
        p.send_offsets_to_transaction([TopicPartition(topic, 0, 7)], c.consumer_group_metadata(), 30)
        unstable = False
        try:
            c.committed([tp], timeout=3)
        except Exception:  # _TIMED_OUT: librdkafka keeps retrying UNSTABLE_OFFSET_COMMIT
            unstable = True
        assert unstable, "committed() returned while the transaction's offsets were pending"
        p.commit_transaction(60)
        assert c.committed([tp], timeout=10)[0].offset == 7
    finally:
        c.close()
