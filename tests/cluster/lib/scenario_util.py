"""Helpers for the broker-side loss scenarios (tests/cluster/scenario_*.py, issue #4), on top
of the harness in cluster.py (which this module only uses, never changes).

Records: record `v` of a run tagged `tag` has key b"k<v>", value b"<tag>:<v>", one header
("seq", b"<v>") and CreateTime BASE_TS_MS + v (BASE_TS_MS: when the test started), set
explicitly by the producer. A record read
back is checked against that scheme (`mismatches`), so a corrupted or mixed-up record is
noticed, not only a missing one.

Accounting (`tally`): a record counts as *acknowledged* when its delivery report had no error
(for acks=0 that only means librdkafka sent it). It is *lost* when it is not in the log read
back at the offset the ack named (or, for acks=0, anywhere); *duplicated* when it appears
more than once.

Every wait is bounded; failures raise ScenarioFailure with a message naming what was
expected and what happened.
"""

import logging
import time
import traceback
import urllib.request

import cluster as cl
from confluent_kafka import (Consumer, KafkaError, KafkaException, OFFSET_BEGINNING, Producer,
                             TopicPartition)
from confluent_kafka.admin import NewTopic

# Recent on purpose: a broker applies retention.ms (7 days) and segment.ms to record
# timestamps, so records stamped in the past get rolled and deleted under the test.
BASE_TS_MS = int(time.time()) * 1000


class ScenarioFailure(Exception):
    """The broker did not behave as Kafka's semantics say (or a step did not complete)."""


class BrokerExited(ScenarioFailure):
    """A broker process exited while the cluster was starting."""


def quiet_logger():
    q = logging.getLogger("varve.scenario.quiet")
    if not q.handlers:
        q.addHandler(logging.NullHandler())
    q.propagate = False
    return q


def log(msg):
    cl.log(msg)


def wait_for(fn, timeout, what, interval=0.25):
    """Polls fn() until it returns something other than None (returned, 0 included) or
    `timeout` s pass (ScenarioFailure naming `what`)."""
    box = []

    def ok():
        v = fn()
        if v is not None:
            box.append(v)
            return True
        return False
    try:
        cl.wait_until(ok, timeout, what, interval=interval)
    except cl.ClusterError as e:
        raise ScenarioFailure(str(e))
    return box[0]


# ---- topics and metadata -------------------------------------------------------------------

def create_topic(c, topic, partitions, rf, config=None, timeout=60):
    """Creates `topic` (the controller assigns the replicas) and waits until every partition
    has a leader and its full ISR; returns {partition: (leader, replicas, isr)}.

    (The scenarios would rather name the replicas with a manual assignment, but Varve answers
    INVALID_REPLICA_ASSIGNMENT to any assignment naming another broker; they pick partitions
    by their replicas instead, see pick_partition.)"""
    try:
        c.create_topic(topic, partitions, rf, config or {}, timeout)
    except cl.ClusterError as e:
        raise ScenarioFailure(str(e))
    # The broker that answers this metadata request may not have applied the controller's
    # UpdateMetadata yet even though another one already showed the full ISR.
    parts = wait_leaders(c, topic, partitions, timeout)
    log(f"topic {topic}: {parts} config {config or {}}")
    return parts


def wait_leaders(c, topic, partitions, timeout=30):
    """Asks the metadata until it shows all `partitions` of the topic, each with a leader
    (bounded); returns {partition: (leader, replicas, isr)}."""
    deadline = time.monotonic() + timeout
    while True:
        parts = c.partitions(topic)
        if len(parts) == partitions and all(l >= 0 for l, _, _ in parts.values()):
            return parts
        if time.monotonic() > deadline:
            raise ScenarioFailure(f"topic {topic}: metadata shows {parts} after {timeout}s")
        time.sleep(0.1)


def pick_partition(c, topic, parts, want, what):
    """The first partition p whose (leader, replicas) satisfies want(leader, replicas)."""
    for p in sorted(parts):
        leader, replicas, _ = parts[p]
        if want(leader, replicas):
            return p
    raise ScenarioFailure(f"{topic}: no partition with {what} in {parts}")


def partition_state(c, topic, partition, timeout=10):
    """(leader, replicas, isr, error code or None) as a Metadata response shows it; leader -2
    when no broker answered or the topic/partition is missing."""
    try:
        md = c.admin().list_topics(timeout=timeout)
    except Exception:
        return (-2, [], [], None)
    t = md.topics.get(topic)
    if t is None or partition not in t.partitions:
        return (-2, [], [], None)
    p = t.partitions[partition]
    err = p.error.code() if p.error is not None else None
    return (p.leader, list(p.replicas), list(p.isrs), err)


def wait_offline(c, topic, partition, timeout):
    """Waits until Metadata shows the partition without a leader (leader -1); returns the
    state (leader, replicas, isr, error)."""
    last = None

    def ok():
        nonlocal last
        last = partition_state(c, topic, partition)
        return last[0] == -1
    try:
        cl.wait_until(ok, timeout, f"{topic}-{partition} to be offline (leader -1)", interval=0.25)
    except cl.ClusterError as e:
        raise ScenarioFailure(f"{e}; last (leader, replicas, isr, error) {last}")
    return last


def wait_leader(c, topic, partition, timeout, want=None, exclude=()):
    """Waits until the partition has a live leader (== want if given, not in exclude)."""
    last = None

    def ok():
        nonlocal last
        last = partition_state(c, topic, partition)
        l = last[0]
        if l < 0 or l in exclude or (want is not None and l != want):
            return False
        b = c.brokers[l]
        return b.alive() and not b.stopped and not b.isolated
    try:
        cl.wait_until(ok, timeout, f"{topic}-{partition} to be led by "
                      f"{want if want is not None else 'a live broker'}"
                      f"{f' other than {list(exclude)}' if exclude else ''}", interval=0.25)
    except cl.ClusterError as e:
        raise ScenarioFailure(f"{e}; last (leader, replicas, isr, error) {last}")
    return last[0]


def wait_isr(c, topic, partition, isr, timeout):
    try:
        c.wait_for_isr_exact(topic, partition, isr, timeout)
    except cl.ClusterError as e:
        raise ScenarioFailure(str(e))


def wait_cluster(c, timeout=60):
    """Waits until Metadata lists every broker of the cluster and an active controller;
    returns the controller's id."""
    last = None

    def ok():
        nonlocal last
        for b in c.brokers:
            if b.proc is not None and b.proc.poll() is not None:
                raise BrokerExited(f"broker {b.id} exited with {b.proc.returncode} during "
                                   f"start-up; log tail:\n{c.log_tail(b.id, 10)}")
        try:
            md = c.admin().list_topics(timeout=5)
        except Exception as e:
            last = str(e)
            return None
        last = (sorted(md.brokers), md.controller_id)
        if len(md.brokers) == c.n and md.controller_id >= 0:
            return md.controller_id + 1
        return None
    try:
        return cl.wait_until(ok, timeout, f"all {c.n} brokers and a controller in Metadata",
                             interval=0.25) - 1
    except cl.ClusterError as e:
        raise ScenarioFailure(f"{e}; last (brokers, controller) {last}")


def wait_broker_gone(c, i, timeout=30):
    """Waits until Metadata no longer lists broker i (its ZooKeeper session has expired; only
    then may a broker with its node.id register again)."""
    def ok():
        try:
            md = c.admin().list_topics(timeout=5)
        except Exception:
            return False
        return i not in md.brokers
    try:
        cl.wait_until(ok, timeout, f"broker {i} to leave the cluster metadata", interval=0.25)
    except cl.ClusterError as e:
        raise ScenarioFailure(str(e))


def controller_id(c, timeout=30):
    """The active controller's id (waits until Metadata names one)."""
    def ok():
        try:
            ctl = c.controller(5)
        except Exception:
            return None
        return ctl + 1 if ctl is not None and ctl >= 0 else None
    try:
        return cl.wait_until(ok, timeout, "Metadata to name a controller", interval=0.25) - 1
    except cl.ClusterError as e:
        raise ScenarioFailure(str(e))


def reference_mode(c):
    """True when the harness runs Apache Kafka (VARVE_CLUSTER_KAFKA_HOME) to validate a
    scenario: Varve's own observability (admin /metrics, log lines) is then not checked."""
    return bool(c.kafka_home)


def pick_non_controller(c, count):
    """`count` broker ids that are not the active controller (so a scenario can kill them
    without also moving the controller). In reference mode the controller is the separate
    KRaft process, so any brokers qualify."""
    ctl = controller_id(c)
    others = [b.id for b in c.brokers if b.id != ctl]
    if len(others) < count:
        raise ScenarioFailure(f"need {count} brokers besides controller {ctl}")
    return ctl, others[:count]


# ---- metrics -------------------------------------------------------------------------------

def scrape(c, i, timeout=5):
    """{(name, labels-string): value} from broker i's admin /metrics."""
    url = f"http://127.0.0.1:{c.brokers[i].admin_port}/metrics"
    with urllib.request.urlopen(url, timeout=timeout) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, val = line.rpartition(" ")
        name, _, labels = head.partition("{")
        try:
            out[(name, labels.rstrip("}"))] = float(val)
        except ValueError:
            continue
    return out


def metric(c, i, name):
    """The unlabelled metric `name` of broker i; ScenarioFailure when the broker's /metrics
    does not answer or lacks it."""
    try:
        m = scrape(c, i)
    except OSError as e:
        raise ScenarioFailure(f"broker {i}: GET /metrics on its admin port "
                              f"{c.brokers[i].admin_port} failed: {e!r}")
    if (name, "") not in m:
        raise ScenarioFailure(f"broker {i}: /metrics has no {name}")
    return m[(name, "")]


def unclean_log_lines(c):
    """The controllers' log lines announcing an unclean leader election, on every broker
    (Varve's wording; None in reference mode)."""
    if reference_mode(c):
        return None
    return [f"broker {b.id}: {l}" for b in c.brokers
            for l in c.log_grep(b.id, "UNCLEAN leader election")]


# ---- producing -----------------------------------------------------------------------------

def record(tag, v):
    return (f"k{v}".encode(), f"{tag}:{v}".encode(), [("seq", str(v).encode())], BASE_TS_MS + v)


class Delivery:
    """What a producer run got back: acked {v: offset} (offset -1 for acks=0) and errors
    {v: KafkaError}."""

    def __init__(self):
        self.acked = {}
        self.errors = {}

    def error_names(self):
        return sorted({e.name() for e in self.errors.values()})

    def __repr__(self):
        return f"acked={len(self.acked)} failed={len(self.errors)} errors={self.error_names()}"


def producer(bootstrap, acks, idempotent=False, retries=0, message_timeout_ms=20000,
             request_timeout_ms=10000, **extra):
    conf = {"bootstrap.servers": bootstrap, "acks": str(acks), "enable.idempotence": idempotent,
            "message.timeout.ms": message_timeout_ms, "request.timeout.ms": request_timeout_ms,
            "linger.ms": 5, "logger": quiet_logger(), "topic.metadata.refresh.interval.ms": 1000,
            "retry.backoff.ms": 100, "retry.backoff.max.ms": 500}
    if not idempotent:
        conf["retries"] = retries
    conf.update(extra)
    return Producer(conf)


def produce(bootstrap, topic, partition, tag, first, count, acks, *, idempotent=False, retries=0,
            message_timeout_ms=20000, timeout=60, into=None):
    """Sends records first..first+count-1 (tagged `tag`) to topic-partition with `acks`, waits
    for every delivery report (at most `timeout` s) and returns a Delivery (or adds to `into`)."""
    d = into or Delivery()

    def on_delivery(err, msg):
        v = int(msg.value().split(b":")[1])
        if err is None:
            d.acked[v] = msg.offset() if msg.offset() is not None else -1
        else:
            d.errors[v] = err

    p = producer(bootstrap, acks, idempotent, retries, message_timeout_ms)
    for v in range(first, first + count):
        k, val, h, ts = record(tag, v)
        while True:
            try:
                p.produce(topic, key=k, value=val, headers=h, timestamp=ts, partition=partition,
                          on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
    left = p.flush(timeout)
    if left:
        raise ScenarioFailure(f"{topic}-{partition}: {left} acks={acks} records without a "
                              f"delivery report after {timeout}s")
    return d


# ---- reading -------------------------------------------------------------------------------

class Read:
    """A partition read from the beginning to the high watermark: records [(offset, key,
    value, headers, timestamp)] in fetch order."""

    def __init__(self, topic, partition, low, high, records):
        self.topic, self.partition, self.low, self.high = topic, partition, low, high
        self.records = records

    def by_offset(self):
        return {r[0]: r[1:] for r in self.records}

    def values(self, tag):
        """{v: [offsets]} of the records tagged `tag`."""
        out = {}
        for off, _, val, _, _ in self.records:
            t, _, v = val.decode(errors="replace").partition(":")
            if t == tag:
                out.setdefault(int(v), []).append(off)
        return out

    def mismatches(self):
        """Records whose key, header or timestamp do not match their value, plus offsets that
        are not contiguous from `low` (the log has no gaps: no compaction, no transactions)."""
        bad = []
        expect = self.low
        for off, k, val, h, ts in self.records:
            try:
                tag, _, v = val.decode().partition(":")
                want = record(tag, int(v))
            except (ValueError, UnicodeDecodeError):
                bad.append((off, "unparseable value", val))
                continue
            if (k, list(h or []), ts) != (want[0], want[2], want[3]):
                bad.append((off, "content", (k, h, ts), "expected", (want[0], want[2], want[3])))
            if off != expect:
                bad.append((off, f"offset not contiguous (expected {expect})"))
            expect = off + 1
        return bad


def read_partition(bootstrap, topic, partition, timeout=60):
    """Reads topic-partition from the beginning up to the high watermark it has when the read
    starts (assign, no group). Raises ScenarioFailure when no leader answers in time."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"scenario-{time.time_ns()}",
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "topic.metadata.refresh.interval.ms": 1000, "logger": quiet_logger()})
    try:
        try:
            low, high = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=15)
        except KafkaException as e:
            raise ScenarioFailure(f"{topic}-{partition}: no watermarks (is it offline?): {e}")
        c.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        recs, pos = [], low
        deadline = time.monotonic() + timeout
        while pos < high:
            if time.monotonic() > deadline:
                raise ScenarioFailure(f"{topic}-{partition}: read stopped at offset {pos} of "
                                      f"{high} after {timeout}s")
            for m in c.consume(1000, 0.5):
                if m.error() is not None:
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        log(f"read {topic}-{partition}: {m.error()}")
                    continue
                if m.offset() >= high:
                    continue
                _, ts = m.timestamp()
                recs.append((m.offset(), m.key(), m.value(), m.headers(), ts))
                pos = max(pos, m.offset() + 1)
        return Read(topic, partition, low, high, recs)
    finally:
        c.close()


def tally(delivery, read, tag, by_offset=True):
    """(lost, duplicated) for the acknowledged records of `delivery` in `read`: lost = the
    values not found (at their acknowledged offset when by_offset and the offset is known)."""
    got = read.values(tag)
    lost = []
    for v, off in delivery.acked.items():
        offs = got.get(v, [])
        if not offs or (by_offset and off >= 0 and off not in offs):
            lost.append(v)
    dup = sum(len(o) - 1 for v, o in got.items() if len(o) > 1)
    return sorted(lost), dup


def require(cond, msg):
    if not cond:
        raise ScenarioFailure(msg)


def run_scenario(name, body, n=3, overrides=None, apart=False):
    """Starts a cluster, runs body(c) and prints PASS/FAIL; on failure keeps the cluster dir
    and prints each broker's warnings and errors. Returns the exit status. `apart`: start it
    with the brokers cut off from each other (Cluster.start(apart=True)), and do not wait for
    every broker to show in Metadata.

    A cluster whose broker could not bind its listener (cluster.py picks each listener port
    with free_port() before the proxies bind theirs, so a proxy can take it first) is
    replaced once by a fresh one; that says nothing about the broker under test."""
    base = {"unclean.leader.election.enable": "false", "zookeeper.session.timeout.ms": 6000,
            "replica.lag.time.max.ms": 5000}
    base.update(overrides or {})
    t0 = time.monotonic()
    for attempt in (1, 2):
        c = cl.Cluster(n, overrides=base)
        ok = retry = False
        try:
            c.start(apart=apart)
            if not apart:
                wait_cluster(c)
            body(c)
            ok = True
            print(f"PASS {name} ({time.monotonic() - t0:.0f}s)", flush=True)
        except BrokerExited as e:
            if attempt == 1 and "Address already in use" in str(e):
                retry = True
                log(f"harness port clash, starting a fresh cluster: {e}")
            else:
                print(f"FAIL {name}: {e}", flush=True)
        except (ScenarioFailure, cl.ClusterError) as e:
            print(f"FAIL {name}: {e}", flush=True)
        except Exception:  # a bug in the test itself or an unexpected client error: still loud
            print(f"FAIL {name}: unexpected error\n{traceback.format_exc()}", flush=True)
        finally:
            if not ok and not retry:
                c.keep = True
                c.report_logs()
            c.close()
        if not retry:
            return 0 if ok else 1
    return 1


def report(label, **counts):
    """Prints one result line: `<label>: k=v ...`."""
    print(f"{label}: " + " ".join(f"{k}={v}" for k, v in counts.items()), flush=True)
