"""Log compaction of a transactional topic, end to end on one broker at $VARVE_BOOTSTRAP
(tests/lib/with_broker.sh; docs/compaction.md "Transactions").

librdkafka (confluent-kafka) transactional producers commit and abort transactions that
rewrite the same keys of a compacted topic with small, time-rolled segments. The test waits
until the cleaner has compacted the log and then checks:
  - read_uncommitted and read_committed both return exactly the newest committed value of
    each key (aborted records are gone, older committed versions compacted away);
  - the cleaner later removes transaction markers whose data is gone (delete.retention.ms is
    small), and read_committed still returns exactly those values;
  - after a broker restart (producer state rebuilt from the cleaned log) nothing changed, and a
    new transaction of a transactional id used before commits and is visible to read_committed
    (no transaction was left open by the cleaning).
"""
import os
import re
import time
import uuid
import subprocess

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BOOTSTRAP = os.environ["VARVE_BOOTSTRAP"]
BROKER_LOG = os.environ["VARVE_LOG"]
KEYS = [f"k{i}" for i in range(6)]

TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.bytes": "1024",
    "segment.ms": "1000",  # the active segment rolls after 1 s, so the last markers get cleaned
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": "0",
    "delete.retention.ms": "2000",
}


def create_topic(name):
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic(name, 1, 1, config=TOPIC_CONFIG)]).values():
        f.result(60)


def read_all(topic, isolation, quiet_s=3.0):
    """Every record of partition 0 from the log start as (key, value) pairs, in offset order."""
    c = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": "reader-" + uuid.uuid4().hex[:8],
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": isolation,
    })
    c.assign([TopicPartition(topic, 0, 0)])
    out, idle = [], 0.0
    try:
        while idle < quiet_s:
            msg = c.poll(0.5)
            if msg is None:
                idle += 0.5
                continue
            if msg.error():
                continue
            idle = 0.0
            out.append((msg.key().decode(), msg.value().decode()))
    finally:
        c.close()
    return out


def transactional_producer(tid):
    p = Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": tid,
                  "transaction.timeout.ms": 60000, "linger.ms": 5})
    p.init_transactions(60)
    return p


def run_txn(p, topic, tag, keys, commit):
    p.begin_transaction()
    for k in keys:
        p.produce(topic, key=k.encode(), value=f"{tag}-{k}".encode())
    if commit:
        p.commit_transaction(60)
    else:
        p.flush(30)
        p.abort_transaction(60)


def cleaner_lines(topic):
    with open(BROKER_LOG, errors="replace") as f:
        return [line for line in f if "[cleaner]" in line and f"{topic}-0:" in line]


def markers_removed(topic):
    total = 0
    for line in cleaner_lines(topic):
        m = re.search(r"(\d+) transaction markers removed", line)
        if m:
            total += int(m.group(1))
    return total


def wait_for(predicate, timeout_s, what):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def test_compaction_removes_aborted_records_and_keeps_the_newest_committed_value_per_key():
    topic = "cmp-txn-" + uuid.uuid4().hex[:8]
    create_topic(topic)
    tid_a = "cmp-a-" + uuid.uuid4().hex[:8]
    a = transactional_producer(tid_a)
    b = transactional_producer("cmp-b-" + uuid.uuid4().hex[:8])

    newest = {}  # key → newest committed value
    committed_tags = set()
    plan = [  # (producer, tag, keys, commit)
        (a, "a1", KEYS, True),
        (b, "b1", KEYS[:3], False),
        (a, "a2", KEYS[:4], True),
        (a, "a3", KEYS, False),
        (b, "b2", KEYS[2:], True),
        (a, "a4", KEYS[:2], True),
        (b, "b3", KEYS, False),
        (a, "a5", KEYS[1:3], False),
    ]
    for round_ in range(3):
        for p, tag, keys, commit in plan:
            tag = f"{tag}r{round_}"
            run_txn(p, topic, tag, keys, commit)
            if commit:
                committed_tags.add(tag)
                for k in keys:
                    newest[k] = f"{tag}-{k}"
    expected = sorted(newest.items())

    # read_committed never shows an aborted value, before or after cleaning.
    assert all(v.split("-")[0] in committed_tags for _, v in read_all(topic, "read_committed"))

    # Wait until the cleaner compacted everything: exactly one record per key, all committed
    # (sorted() of the pairs equals `expected` only if no key appears twice).
    wait_for(lambda: sorted(read_all(topic, "read_uncommitted", quiet_s=1.5)) == expected, 90,
             "the cleaner to remove aborted and superseded records")
    assert sorted(read_all(topic, "read_committed")) == expected

    # Markers whose transactions lost all their data go after delete.retention.ms.
    wait_for(lambda: markers_removed(topic) > 0, 90, "transaction markers to be removed")
    assert sorted(read_all(topic, "read_committed")) == expected
    assert sorted(read_all(topic, "read_uncommitted")) == expected

    a.flush(10)
    b.flush(10)
    del a, b

    # Producer state is rebuilt from the cleaned log (and snapshots) after a restart.
    subprocess.run([os.environ["VARVE_RESTART"]], check=True)
    assert sorted(read_all(topic, "read_committed")) == expected
    c = transactional_producer(tid_a)  # a transactional id used before the restart
    run_txn(c, topic, "c1", ["k0"], True)
    newest["k0"] = "c1-k0"
    after = read_all(topic, "read_committed")
    assert after[-1] == ("k0", "c1-k0")
    assert sorted(dict(after).items()) == sorted(newest.items())
