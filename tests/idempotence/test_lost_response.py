"""A producer whose batch is retried after a lost Produce response gets no duplicate.

Set-up (run.sh): the broker listens on VARVE_BOOTSTRAP but advertises 127.0.0.1:
VARVE_PROXY_PORT, where the test runs a LossyProxy (kafka_proxy.py) forwarding to the broker.
Clients bootstrap through the proxy, so all their traffic crosses it. The proxy swallows the
first DROPS Produce responses and closes that connection: the broker appended the batch, the
client sees a broken connection and sends the batch again.

- idempotent producer (enable.idempotence=true, acks=all): every record is in the log
  exactly once, in produce order, at the offset its delivery report gave. Two fault
  patterns: the first DROPS responses (one batch and its resends), and one response in two
  (DROPS different batches, at sequence numbers 0, 50, 100).
- control, non-idempotent producer (acks=all, retries, max.in.flight=1): the same faults
  leave duplicates in the log. This proves the proxy really makes the broker see retries of
  appended batches, so the zero duplicates above mean the broker deduplicated them.

The proxy also checks that every swallowed response reported a successful append.
Observed: librdkafka 2.16 keeps one Produce request in flight per partition in idempotent
mode, so these tests do not exercise resends of several pipelined batches at once.
"""

import collections
import os
import time
import uuid

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

from kafka_proxy import LossyProxy, PRODUCE_API_KEY

RECORDS = 1000
DROPS = 3
DEADLINE_S = 60


def _env(name):
    value = os.environ.get(name)
    assert value, "%s is not set: run this test through tests/idempotence/run.sh" % name
    return value


class Setup:
    def __init__(self, pass_between=0):
        self.bootstrap = _env("VARVE_BOOTSTRAP")
        host, port = self.bootstrap.rsplit(":", 1)
        self.broker_addr = (host, int(port))
        self.proxy_port = int(_env("VARVE_PROXY_PORT"))
        self.proxy_bootstrap = "127.0.0.1:%d" % self.proxy_port
        self.proxy = LossyProxy(self.proxy_port, self.broker_addr, DROPS, pass_between)

    def __enter__(self):
        self.proxy.start()
        return self

    def __exit__(self, *exc):
        self.proxy.stop()


def _create_topic(setup, name):
    admin = AdminClient({"bootstrap.servers": setup.bootstrap})
    md = admin.list_topics(timeout=15)
    advertised = sorted("%s:%d" % (b.host, b.port) for b in md.brokers.values())
    assert advertised == [setup.proxy_bootstrap], (
        "broker Metadata advertises %s; expected only the proxy %s (the broker runs with "
        "advertised.listeners=PLAINTEXT://%s and listens on %s)"
        % (advertised, setup.proxy_bootstrap, setup.proxy_bootstrap, setup.bootstrap))
    futures = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)],
                                  operation_timeout=15, request_timeout=15)
    futures[name].result(timeout=30)
    deadline = time.monotonic() + DEADLINE_S
    while True:
        t = admin.list_topics(topic=name, timeout=10).topics.get(name)
        if t is not None and t.error is None and len(t.partitions) == 1 \
                and t.partitions[0].leader >= 0:
            return
        assert time.monotonic() < deadline, "topic %s has no leader after %ss" % (name, DEADLINE_S)
        time.sleep(0.2)


def _produce(setup, topic, payloads, extra_config):
    """Produces payloads to partition 0 through the proxy; returns {payload: acked offset}."""
    config = {
        "bootstrap.servers": setup.proxy_bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "batch.num.messages": 50,   # ~20 batches, so the faults hit a few of many requests
        "message.timeout.ms": 90000,
        "retry.backoff.ms": 100,
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 1000,
    }
    config.update(extra_config)
    acked, failures = {}, []

    def on_delivery(err, msg):
        if err is not None:
            failures.append("%s: %s" % (msg.value()[:40], err))
        else:
            acked[msg.value()] = msg.offset()

    producer = Producer(config)
    for p in payloads:
        while True:
            try:
                producer.produce(topic, value=p, partition=0, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(DEADLINE_S)
    assert left == 0, "%d records still undelivered after %ss" % (left, DEADLINE_S)
    assert not failures, "%d delivery reports failed, first: %s" % (len(failures), failures[:5])
    assert len(acked) == len(payloads), "acked %d of %d" % (len(acked), len(payloads))
    return acked


def _consume_all(setup, topic):
    """Reads partition 0 from offset 0 to the high watermark; returns [(offset, value)]."""
    consumer = Consumer({
        "bootstrap.servers": setup.bootstrap,
        "group.id": "idem-verify-" + uuid.uuid4().hex,
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=15)
        assert low == 0, "log start offset is %d, expected 0" % low
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        out = []
        deadline = time.monotonic() + DEADLINE_S
        while len(out) < high:
            assert time.monotonic() < deadline, (
                "consumed %d of %d records within %ss" % (len(out), high, DEADLINE_S))
            msg = consumer.poll(1.0)
            if msg is None or (msg.error() and msg.error().code() == KafkaError._PARTITION_EOF):
                continue
            assert msg.error() is None, "consume error: %s" % msg.error()
            out.append((msg.offset(), msg.value()))
        return out
    finally:
        consumer.close()


def _check_proxy(setup):
    s = setup.proxy.stats()
    print("proxy: connections=%d produce_requests=%d max_produce_in_flight=%d "
          "dropped_produce_responses=%d also_lost_by_close=%d"
          % (s["connections"], s["requests"].get(PRODUCE_API_KEY, 0),
             s["max_produce_in_flight"], s["dropped_produce"], s["lost_with_close"]))
    for version, result in s["dropped"]:
        print("proxy: dropped Produce v%d response (topic, partition, error, base_offset) = %s"
              % (version, result))
    assert not s["errors"], "proxy saw broken Kafka framing: %s" % s["errors"]
    assert s["dropped_produce"] == DROPS, (
        "the proxy dropped %d Produce responses, expected %d (did the producer bypass it?)"
        % (s["dropped_produce"], DROPS))
    # Each lost response must have been a success: the broker appended the batch, so the
    # client's resend is a true duplicate the broker has to recognise.
    failed = [r for _, r in s["dropped"] if r is None or r[2] != 0 or r[3] < 0]
    assert not failed, "dropped Produce responses that were not successful appends: %s" % failed
    return s


def _run(extra_config, tag, pass_between=0):
    with Setup(pass_between) as setup:
        topic = "idem-%s-%s" % (tag, uuid.uuid4().hex[:8])
        _create_topic(setup, topic)
        payloads = [b"%s-%06d" % (topic.encode(), i) for i in range(RECORDS)]
        acked = _produce(setup, topic, payloads, extra_config)
        proxy_stats = _check_proxy(setup)
        log = _consume_all(setup, topic)
    counts = collections.Counter(v for _, v in log)
    duplicates = sum(c - 1 for c in counts.values())
    unknown = [v for v in counts if v not in acked]
    missing = [p for p in payloads if p not in counts]
    assert not unknown, "log holds %d records nobody produced, e.g. %s" % (len(unknown), unknown[:3])
    assert not missing, "log lacks %d acknowledged records, e.g. %s" % (len(missing), missing[:3])
    offsets = [o for o, _ in log]
    assert offsets == list(range(len(log))), "log offsets are not contiguous from 0"
    return payloads, acked, log, duplicates, proxy_stats


def _check_exactly_once(payloads, acked, log, duplicates):
    print("acked=%d consumed=%d duplicates=%d" % (len(acked), len(log), duplicates))
    assert duplicates == 0, "idempotent producer left %d duplicate records" % duplicates
    assert len(log) == RECORDS, "log holds %d records, expected %d" % (len(log), RECORDS)
    values = [v for _, v in log]
    if values != payloads:
        first = next(i for i, (a, b) in enumerate(zip(values, payloads)) if a != b)
        raise AssertionError("order differs from produce order at offset %d: %s, expected %s"
                             % (first, values[first], payloads[first]))
    wrong = [(v, acked[v], o) for o, v in log if acked[v] != o]
    assert not wrong, ("%d delivery reports name another offset than the record's, first "
                       "(payload, acked, actual): %s" % (len(wrong), wrong[:3]))
    print("acked=%d duplicates=0" % len(acked))


def test_idempotent_producer_writes_each_record_once():
    """The first DROPS Produce responses are lost: the first batch and its resends."""
    payloads, acked, log, duplicates, _ = _run({"enable.idempotence": True}, "on")
    _check_exactly_once(payloads, acked, log, duplicates)


def test_idempotent_producer_lost_responses_of_different_batches():
    """One Produce response in two is lost until DROPS are gone: the duplicates the broker
    must recognise are batches at different sequence numbers, not only sequence 0."""
    payloads, acked, log, duplicates, stats = _run({"enable.idempotence": True}, "spread",
                                                   pass_between=1)
    base_offsets = sorted({r[3] for _, r in stats["dropped"]})
    assert len(base_offsets) == DROPS, (
        "the lost responses covered batches at base offsets %s; expected %d different batches"
        % (base_offsets, DROPS))
    _check_exactly_once(payloads, acked, log, duplicates)


def test_non_idempotent_producer_duplicates_retried_batches():
    payloads, acked, log, duplicates, _ = _run({
        "enable.idempotence": False,
        "retries": 10,
        "max.in.flight.requests.per.connection": 1,
    }, "off")
    print("acked=%d consumed=%d duplicates=%d" % (len(acked), len(log), duplicates))
    assert duplicates > 0, ("control failed: a non-idempotent producer whose Produce responses "
                            "were lost left no duplicates, so the proxy does not cause retries "
                            "of appended batches and the idempotent test proves nothing")
    assert len(log) == RECORDS + duplicates
