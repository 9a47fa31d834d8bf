"""__consumer_offsets stays bounded: 100,000 offset commits to one group are compacted away.

Runs under tests/lib/with_broker.sh (VARVE_BOOTSTRAP, VARVE_DATA_DIR, VARVE_RESTART,
VARVE_ADMIN) with these broker overrides (set by the ctest registration):
  offsets.topic.num.partitions=1        every group lives in __consumer_offsets-0
  offsets.topic.segment.bytes=262144    the log rolls often, so segments become cleanable
  group.initial.rebalance.delay.ms=0
__consumer_offsets keeps its default min.cleanable.dirty.ratio (0.5): once cleaned, its
clean part is a handful of records, so every rolled segment makes it due again; the
broker's housekeeping runs the cleaner every second."""
import os
import re
import subprocess
import time
import urllib.request

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

GROUP = "bounded"
PARTITIONS = 10
ROUNDS = 10_000                       # x PARTITIONS = 100,000 offset commits
SEGMENT_BYTES = 262144                # must match offsets.topic.segment.bytes
# Once the cleaner has caught up, the inactive segments hold only the newest record of each
# key (10 offset records, ~80 bytes each, in at most a couple of batches: under a kilobyte;
# INACTIVE_BOUND leaves room for batch framing split over two segments) and the active
# segment is below segment.bytes, so the partition cannot legitimately exceed
# 2 x segment.bytes. Without compaction the 100,000 commits occupy 7.6 MB (30 segments).
BOUND = 2 * SEGMENT_BYTES
INACTIVE_BOUND = 16384
CLEAN_TIMEOUT = 90.0
OFFSETS_DIR = "__consumer_offsets-0"


def env(name):
    value = os.environ.get(name)
    assert value, f"{name} is not set: run this test through tests/lib/with_broker.sh"
    return value


def bootstrap():
    return env("VARVE_BOOTSTRAP")


def segment_sizes():
    """[(base offset, bytes)] of the *.log segments of __consumer_offsets-0, by base offset
    (the last one is the active segment)."""
    d = os.path.join(env("VARVE_DATA_DIR"), OFFSETS_DIR)
    out = []
    for name in os.listdir(d):
        if re.fullmatch(r"\d{20}\.log", name):
            try:
                out.append((int(name[:20]), os.path.getsize(os.path.join(d, name))))
            except FileNotFoundError:  # swapped out by the cleaner meanwhile
                pass
    return sorted(out)


def log_bytes():
    """(total bytes of the *.log files, number of them) in __consumer_offsets-0."""
    sizes = segment_sizes()
    return sum(b for _, b in sizes), len(sizes)


def inactive_bytes(sizes):
    return sum(b for _, b in sizes[:-1])


def offsets_bytes_in():
    """varve_topic_bytes_in_total for __consumer_offsets (bytes appended since start)."""
    with urllib.request.urlopen(f"http://{env('VARVE_ADMIN')}/metrics", timeout=10) as r:
        text = r.read().decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("varve_topic_bytes_in_total{") and 'topic="__consumer_offsets"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def cleaner_lines():
    with open(env("VARVE_LOG"), errors="replace") as f:
        return [l for l in f if "cleaned offsets" in l and OFFSETS_DIR in l]


def commit_consumer():
    return Consumer({"bootstrap.servers": bootstrap(), "group.id": GROUP,
                     "enable.auto.commit": False, "socket.timeout.ms": 30000})


def expected_offsets(topic):
    return {p: (ROUNDS - 1) * PARTITIONS + p + 1 for p in range(PARTITIONS)}


def committed_by_consumer(topic):
    c = commit_consumer()
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30)
    finally:
        c.close()
    for tp in got:
        assert tp.error is None, f"committed() for {tp}: {tp.error}"
    return {tp.partition: tp.offset for tp in got}


def committed_by_admin(topic):
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    req = ConsumerGroupTopicPartitions(GROUP, [TopicPartition(topic, p) for p in range(PARTITIONS)])
    res = admin.list_consumer_group_offsets([req], request_timeout=30)[GROUP].result(timeout=30)
    for tp in res.topic_partitions:
        assert tp.error is None, f"list_consumer_group_offsets for {tp}: {tp.error}"
    return {tp.partition: tp.offset for tp in res.topic_partitions}


def retry(what, fn, timeout=60.0):
    """fn() until it returns without a KafkaException (coordinator loading after a restart)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except KafkaException as e:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} still failing after {timeout}s: {e}") from e
            time.sleep(0.5)


def check_committed(topic, when):
    expected = expected_offsets(topic)
    by_consumer = retry("Consumer.committed", lambda: committed_by_consumer(topic))
    assert by_consumer == expected, f"{when}: Consumer.committed {by_consumer} != {expected}"
    by_admin = retry("list_consumer_group_offsets", lambda: committed_by_admin(topic))
    assert by_admin == expected, f"{when}: list_consumer_group_offsets {by_admin} != {expected}"


def cleaned_up(sizes):
    return sum(b for _, b in sizes) <= BOUND and inactive_bytes(sizes) <= INACTIVE_BOUND


def wait_bounded(when):
    """Waits (at most CLEAN_TIMEOUT) until the partition is within BOUND and its inactive
    segments within INACTIVE_BOUND; returns (total bytes, segments, seconds waited)."""
    start = time.monotonic()
    sizes = segment_sizes()
    while not cleaned_up(sizes) and time.monotonic() - start < CLEAN_TIMEOUT:
        time.sleep(0.2)
        sizes = segment_sizes()
    took = time.monotonic() - start
    assert cleaned_up(sizes), (
        f"{when}: after {CLEAN_TIMEOUT:.0f}s {OFFSETS_DIR} holds {sum(b for _, b in sizes)} "
        f"bytes (bound {BOUND}), {inactive_bytes(sizes)} of them in inactive segments (bound "
        f"{INACTIVE_BOUND}); segments (base offset, bytes): {sizes}")
    return sum(b for _, b in sizes), len(sizes), took


def test_consumer_offsets_stays_bounded_after_100000_commits_to_one_group():
    topic = f"offsets-bounded-{os.getpid()}"
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)],
                        operation_timeout=30, request_timeout=30)[topic].result(timeout=30)

    c = commit_consumer()
    peak, t0 = 0, time.monotonic()
    try:
        for r in range(ROUNDS):
            # Simple commits (no subscription, generation -1): offsets strictly increase,
            # partition p of round r commits r * PARTITIONS + p + 1.
            tps = [TopicPartition(topic, p, r * PARTITIONS + p + 1) for p in range(PARTITIONS)]
            res = c.commit(offsets=tps, asynchronous=False)
            bad = [tp for tp in res if tp.error is not None]
            assert not bad, f"round {r}: commit errors {bad}"
            if r % 500 == 0:
                peak = max(peak, log_bytes()[0])
    finally:
        c.close()
    commit_secs = time.monotonic() - t0
    written = offsets_bytes_in()
    sizes_before = segment_sizes()
    before, segs_before = sum(b for _, b in sizes_before), len(sizes_before)
    peak = max(peak, before)
    print(f"\n{ROUNDS} commit calls ({ROUNDS * PARTITIONS} offsets) in {commit_secs:.1f}s; "
          f"bytes appended to __consumer_offsets: {written}; on disk right after the last "
          f"commit: {before} bytes in {segs_before} segments; peak sampled while committing: "
          f"{peak}; segments (base offset, bytes): {sizes_before}")
    # Without compaction everything appended would be on disk; make sure the test measures
    # something: far more was written than the bound.
    assert written > 4 * BOUND, f"only {written} bytes appended: the test exercises nothing"

    after, segs_after, took = wait_bounded("after the commits")
    lines = cleaner_lines()
    removed = 0
    for line in lines:
        m = re.search(r"bytes (\d+) -> (\d+)", line)
        removed += int(m.group(1)) - int(m.group(2)) if m else 0
    print(f"on disk after cleaning: {after} bytes in {segs_after} segments {segment_sizes()} "
          f"(bound {BOUND}), reached {took:.1f}s after the last commit; "
          f"{len(lines)} cleaner passes on {OFFSETS_DIR} removed {removed} bytes "
          f"(appended - removed = {written - removed}); last: {lines[-1].strip() if lines else '-'}")
    assert lines, "the partition is bounded but the cleaner never logged a pass"

    check_committed(topic, "before restart")

    subprocess.run([env("VARVE_RESTART")], check=True, timeout=60)
    check_committed(topic, "after restart")
    sizes = segment_sizes()
    print(f"after restart: {sum(b for _, b in sizes)} bytes in {len(sizes)} segments; "
          f"committed offsets intact")
    assert cleaned_up(sizes), f"after restart {OFFSETS_DIR} grew: {sizes}"
