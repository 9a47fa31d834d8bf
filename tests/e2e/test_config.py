"""Broker configuration end to end: invalid values stop start-up naming the key, unknown keys
are accepted with a warning, a plain Kafka server.properties (ZooKeeper era) starts a broker
of a ZooKeeper cluster (ZooKeeper from Debian's package, started here), an unreachable
ZooKeeper is a clear start-up error, and a missing file is a clear error. Starts its own
brokers and ZooKeeper."""
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

import kwire

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("VARVE_BIN", os.path.join(REPO, "build", "varve"))
SAMPLE = os.path.join(REPO, "config", "server.properties")

SEED = """broker.id=0
listeners=PLAINTEXT://localhost:9092
log.dirs=/tmp/kafka-logs
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
log.flush.interval.messages=10000
log.flush.interval.ms=1000
zookeeper.connect=localhost:2181
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Broker:
    """A broker process started by a test, with stdout and stderr kept apart."""

    def __init__(self, config_file, overrides, workdir):
        self.port, admin_port = free_port(), free_port()
        self.data = os.path.join(workdir, "data")
        self.out_path = os.path.join(workdir, "stdout")
        self.err_path = os.path.join(workdir, "stderr")
        args = [BIN, "broker", config_file,
                "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "--override", f"log.dirs={self.data}",
                "--override", f"admin.listeners=http://127.0.0.1:{admin_port}"]
        for kv in overrides:
            args += ["--override", kv]
        self.proc = subprocess.Popen(args, stdout=open(self.out_path, "w"),
                                     stderr=open(self.err_path, "w"))
        self.bootstrap = f"127.0.0.1:{self.port}"

    def output(self):
        with open(self.out_path, errors="replace") as o, open(self.err_path, errors="replace") as e:
            return o.read(), e.read()

    def wait_listening(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out, err = self.output()
                raise AssertionError(f"broker exited {self.proc.returncode}:\n{out[-3000:]}\n{err[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("broker did not listen within %ss" % timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory(prefix="varve-e2e-config.") as d:
        yield d


def expect_startup_failure(workdir, config_file, overrides, must_mention):
    b = Broker(config_file, overrides, workdir)
    try:
        rc = b.proc.wait(10)
    except subprocess.TimeoutExpired:
        b.stop()
        raise AssertionError(f"broker with {overrides} still running after 10s; expected it to refuse")
    out, err = b.output()
    assert rc != 0, f"broker exited 0 with {overrides}"
    assert must_mention in err, f"stderr does not name {must_mention!r}:\n{err[-2000:]}"
    return err


@pytest.mark.parametrize("override,key", [
    ("num.partitions=abc", "num.partitions"),
    ("log.segment.bytes=-5", "log.segment.bytes"),
    ("log.retention.check.interval.ms=soon", "log.retention.check.interval.ms"),
    ("unclean.leader.election.enable=maybe", "unclean.leader.election.enable"),
])
def test_invalid_value_exits_nonzero_naming_the_key(workdir, override, key):
    expect_startup_failure(workdir, SAMPLE, [override], key)


def test_invalid_value_in_the_file_names_the_key(workdir):
    path = os.path.join(workdir, "bad.properties")
    with open(path, "w") as f:
        f.write("node.id=0\nlog.segment.bytes=-5\n")
    expect_startup_failure(workdir, path, [], "log.segment.bytes")


def test_missing_config_file_is_a_clear_error(workdir):
    missing = os.path.join(workdir, "no-such-dir", "server.properties")
    expect_startup_failure(workdir, missing, [], missing)


def test_unknown_key_is_accepted_with_a_warning(workdir):
    b = Broker(SAMPLE, ["e2e.surely.unknown.key=17"], workdir)
    try:
        b.wait_listening()
        c = kwire.Conn(b.bootstrap)
        assert c.metadata_v1()["brokers"], "no brokers in Metadata"
        c.close()
    finally:
        b.stop()
    out, err = b.output()
    lines = [l for l in (out + err).splitlines() if "e2e.surely.unknown.key" in l]
    assert any("WARN" in l or "warn" in l.lower() for l in lines), \
        f"no warning naming the unknown key; lines mentioning it: {lines}"


CLUSTER_SH = os.path.join(REPO, "scripts", "cluster.sh")


@pytest.fixture
def zookeeper(workdir):
    """A ZooKeeper on a free loopback port; yields its connect string (with a chroot)."""
    port = free_port()
    zk_dir = os.path.join(workdir, "zk")
    subprocess.run([CLUSTER_SH, "zk-start", "--dir", zk_dir, "--zk-port", str(port)],
                   check=True, timeout=120)
    try:
        yield f"127.0.0.1:{port}/e2e-config"
    finally:
        subprocess.run([CLUSTER_SH, "zk-stop", "--dir", zk_dir], timeout=60)


def test_unreachable_zookeeper_refuses_to_start_naming_the_key(workdir):
    port = free_port()  # nothing listens there
    err = expect_startup_failure(
        workdir, SAMPLE,
        [f"zookeeper.connect=127.0.0.1:{port}", "zookeeper.connection.timeout.ms=1500"],
        "zookeeper.connect")
    assert f"127.0.0.1:{port}" in err, err[-2000:]


def test_seed_kafka_properties_start_a_cluster_broker(workdir, zookeeper):
    path = os.path.join(workdir, "kafka.properties")
    with open(path, "w") as f:
        f.write(SEED)
    # The seed file verbatim, except where ZooKeeper runs in this test.
    b = Broker(path, [f"zookeeper.connect={zookeeper}"], workdir)
    try:
        b.wait_listening()
        c = kwire.Conn(b.bootstrap)
        md = c.metadata_v1()
        assert md["brokers"] == [(0, "127.0.0.1", b.port, None)], md["brokers"]
        c.close()

        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        # replication factor 3 on one broker: INVALID_REPLICATION_FACTOR, explicit or default
        for name, rf in (("e2e-rf3", 3), ("e2e-rf-default", -1)):
            fs = admin.create_topics([NewTopic(name, 1, rf)], operation_timeout=20, request_timeout=20)
            with pytest.raises(KafkaException) as e:
                fs[name].result(timeout=30)
            err = e.value.args[0]
            assert err.code() == 38 or err.name() == "INVALID_REPLICATION_FACTOR", \
                f"create {name} rf={rf}: {err}"
        topics = admin.list_topics(timeout=10).topics
        assert "e2e-rf3" not in topics and "e2e-rf-default" not in topics

        # replication factor 1 works; acks=all then fails min.insync.replicas=2
        fs = admin.create_topics([NewTopic("e2e-rf1", 1, 1)], operation_timeout=20, request_timeout=20)
        fs["e2e-rf1"].result(timeout=30)
        c = kwire.Conn(b.bootstrap)
        r = c.produce_v3("e2e-rf1", 0, kwire.record_batch([b"isr"]), acks=-1)
        assert r["error"] == 19, f"acks=all with ISR 1 < min.insync.replicas 2: error {r['error']}, expected 19 NOT_ENOUGH_REPLICAS"
        r = c.produce_v3("e2e-rf1", 0, kwire.record_batch([b"one"]), acks=1)
        assert r["error"] == 0 and r["base_offset"] == 0, r
        c.close()
    finally:
        b.stop()
    assert b.proc.returncode == 0, f"SIGTERM shutdown exited {b.proc.returncode}"
