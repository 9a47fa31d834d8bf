"""Self-tests of the fault-test machinery (run with pytest from run.sh): the proxy's isolation,
the socket-owner lookup, the cluster's process faults, and that both no-loss verifiers do
report lost and duplicated records. They need ZooKeeper and the broker binary but not
replication, so they hold on a single-node build too."""

import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)
import cluster as cl  # noqa: E402
import fault_no_loss_test as fault  # noqa: E402


class EchoServer:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c):
        with c:
            while True:
                try:
                    d = c.recv(4096)
                except OSError:
                    return
                if not d:
                    return
                c.sendall(d)


def roundtrip(port, payload=b"ping", timeout=1.0):
    """Sends payload through 127.0.0.1:port; the echo (None on timeout, b"" when closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.settimeout(timeout)
        s.sendall(payload)
        try:
            return s.recv(4096)
        except socket.timeout:
            return None
        except ConnectionResetError:
            return b""


def test_proxy_forwards_then_block_drops_open_connections_and_blackholes_new_ones():
    echo = EchoServer()
    p = cl.Proxy("t", echo.port, lambda lp, pp: None)
    try:
        assert roundtrip(p.port) == b"ping"
        held = socket.create_connection(("127.0.0.1", p.port), timeout=2)
        held.sendall(b"a")
        assert held.recv(10) == b"a"
        p.block()
        held.settimeout(2)
        assert held.recv(10) == b""  # dropped
        assert roundtrip(p.port) is None  # accepted, never answered
        p.unblock()
        assert roundtrip(p.port) == b"ping"
    finally:
        p.close()


def test_proxy_blocks_only_connections_from_the_blocked_source():
    echo = EchoServer()
    owners = {}  # local port -> broker id, filled in before each connection is accepted
    p = cl.Proxy("t", echo.port, lambda lp, pp: owners.get(lp))

    def connect(owner):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        owners[s.getsockname()[1]] = owner
        s.connect(("127.0.0.1", p.port))
        s.settimeout(1)
        return s

    try:
        a, b = connect(1), connect(2)
        for s in (a, b):
            s.sendall(b"x")
            assert s.recv(10) == b"x"
        p.block(sources={1})
        assert a.recv(10) == b""  # broker 1's connection dropped
        b.sendall(b"y")
        assert b.recv(10) == b"y"  # broker 2's untouched
        c = connect(1)
        c.sendall(b"z")
        with pytest.raises(socket.timeout):
            c.recv(10)  # black-holed
        p.unblock(sources={1})
        d = connect(1)
        d.sendall(b"w")
        assert d.recv(10) == b"w"
    finally:
        p.close()


def test_socket_owner_lookup_finds_the_process_holding_the_socket():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    c = socket.create_connection(srv.getsockname())
    try:
        local, remote = c.getsockname()[1], srv.getsockname()[1]
        inode = cl._socket_inode(local, remote)
        assert inode is not None
        assert cl._pid_has_socket(os.getpid(), inode)
        child = subprocess.Popen(["sleep", "30"])
        try:
            assert not cl._pid_has_socket(child.pid, inode)
        finally:
            child.kill()
            child.wait()
    finally:
        c.close()
        srv.close()


def metadata_ok(bootstrap, timeout=3):
    from confluent_kafka.admin import AdminClient
    import logging
    quiet = logging.getLogger("selftest.quiet")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    try:
        AdminClient({"bootstrap.servers": bootstrap, "logger": quiet}).list_topics(timeout=timeout)
        return True
    except Exception:
        return False


def test_cluster_kill_restart_pause_isolate_heal():
    with cl.Cluster(3) as c:
        b = c.brokers[1]
        one = f"127.0.0.1:{b.proxy_port}"
        assert metadata_ok(one)

        pid = b.pid
        c.kill(1)
        assert b.pid is None and not os.path.exists(f"/proc/{pid}")
        c.restart(1)
        assert b.pid not in (None, pid)
        assert metadata_ok(one)

        c.stop(1)
        assert cl._proc_state(b.pid) == "T"
        assert not metadata_ok(one, timeout=2)
        c.cont(1)
        assert metadata_ok(one, timeout=10)

        # Replication traffic: broker 1's follower fetchers connect to the others' proxies,
        # and the proxies must know those connections as broker 1's.
        c.create_topic("selftest-rf3", 3, 3)

        def forwarded_from_1():
            n = 0
            for o in c.brokers:
                if o.id != 1:
                    with o.proxy.lock:
                        n += sum(1 for x in o.proxy.conns if x.source == 1 and x.upstream is not None)
            return n
        cl.wait_until(forwarded_from_1, 30, "broker 1's connections to the other brokers")

        c.isolate(1)
        assert not metadata_ok(one, timeout=2)
        assert forwarded_from_1() == 0  # its outgoing connections are cut too
        with b.zk_proxy.lock:
            assert all(x.upstream is None for x in b.zk_proxy.conns)  # nothing reaches ZooKeeper
        c.heal(1)
        assert cl.wait_until(lambda: metadata_ok(one), 30, "broker 1 to answer after heal")

        pids = [x.pid for x in c.brokers] + [c.zk_pid]
        c.stop(2)
        c.stop_all()
        assert not any(cl.alive(p) for p in pids)


def run_verifier_then(client, mutate):
    """Runs the verifier against a 1-broker cluster for 3,000 records, calls mutate(cluster)
    after production, and returns (rc, result line)."""
    with cl.Cluster(1) as c:
        c.create_topic(fault.TOPIC, 6, 1)
        v = fault.Verifier(fault.verifier_cmd(client, c.bootstrap(), 3000, 0),
                           os.path.join(c.dir, "verifier.log"))
        try:
            v.send("permit 3000")
            v.wait(lambda: v.produced_line is not None, 120, "production")
            assert "acknowledged=3000 failed=0" in v.produced_line
            mutate(c)
            v.send("verify")
            v.wait(lambda: v.result_line is not None, 120, "the result")
            return v.proc.wait(30), v.result_line
        finally:
            v.kill()


def produce_duplicates(c, count):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": c.bootstrap()})
    for i in range(count):
        p.produce(fault.TOPIC, key=str(i // 6).encode(), value=str(i).encode(), partition=i % 6)
    assert p.flush(30) == 0


def recreate_topic(c):
    a = c.admin()
    a.delete_topics([fault.TOPIC], operation_timeout=30)[fault.TOPIC].result(60)
    cl.wait_until(lambda: not c.partitions(fault.TOPIC), 60, "topic deletion")
    c.create_topic(fault.TOPIC, 6, 1)


@pytest.mark.parametrize("client", ["java", "librdkafka"])
def test_verifier_reports_every_acknowledged_record_lost_when_the_topic_is_recreated(client):
    rc, result = run_verifier_then(client, recreate_topic)
    assert rc == 1, result
    assert "acknowledged=3000 lost=3000 duplicated=0" in result


@pytest.mark.parametrize("client", ["java", "librdkafka"])
def test_verifier_reports_records_written_twice_as_duplicated(client):
    rc, result = run_verifier_then(client, lambda c: produce_duplicates(c, 100))
    assert rc == 1, result
    assert "acknowledged=3000 lost=0 duplicated=100 misplaced=0 reordered=0" in result


@pytest.mark.parametrize("client", ["java", "librdkafka"])
def test_verifier_passes_when_nothing_happened(client):
    rc, result = run_verifier_then(client, lambda c: None)
    assert rc == 0, result
    assert "acknowledged=3000 lost=0 duplicated=0" in result


def test_watchdog_kills_the_cluster_when_the_harness_is_killed():
    child = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
sys.path.insert(0, {os.path.join(HERE, "lib")!r})
import cluster as cl
c = cl.Cluster(1)
c.start()
print("PIDS", c.zk_pid, c.brokers[0].pid, c.dir, flush=True)
time.sleep(600)
"""], stdout=subprocess.PIPE, text=True)
    cluster_dir = None
    try:
        for line in child.stdout:
            if line.startswith("PIDS "):
                _, zk_pid, broker_pid, cluster_dir = line.split()
                zk_pid, broker_pid = int(zk_pid), int(broker_pid)
                break
        else:
            pytest.fail("the child harness did not start its cluster")
        assert cl.alive(zk_pid) and cl.alive(broker_pid)
    finally:
        child.kill()  # SIGKILL: no atexit, no cleanup in the harness itself
        child.wait()
    try:
        cl.wait_until(lambda: not cl.alive(zk_pid) and not cl.alive(broker_pid),
                      30, "the watchdog to kill ZooKeeper and the broker")
    finally:
        if cluster_dir:
            shutil.rmtree(cluster_dir, ignore_errors=True)
