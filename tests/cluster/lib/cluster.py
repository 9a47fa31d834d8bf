"""A local Varve cluster for fault tests: one ZooKeeper, N brokers, and a TCP proxy in front
of every broker listener and every broker's ZooKeeper connection, so that a broker can be
cut off from the network without root (isolate / heal).

Layout of a cluster started in directory D:

  D/zookeeper/...            started through scripts/cluster.sh zk-start (its own layout)
  D/broker-<i>/server.properties, data/, broker.log, broker.pid

Addresses: broker i listens on 127.0.0.1:<listen_port> and advertises its proxy
127.0.0.1:<proxy_port>, so clients and the other brokers (which find each other through the
registrations in ZooKeeper) always pass through the proxy. Broker i reaches ZooKeeper through
its own proxy 127.0.0.1:<zk_proxy_port>, chroot /varve.

Isolation: isolate(i) drops every connection through broker i's listener proxy and its
ZooKeeper proxy and black-holes new ones (accepted, never forwarded); it also drops and
black-holes the connections broker i itself opens to the other brokers' proxies (the proxy
finds which process owns the connecting socket through /proc). heal(i) closes the black-holed
connections and forwards again.

Processes: the harness kills only the processes it started, by pid (SIGKILL / SIGSTOP /
SIGCONT / SIGTERM). Every wait is bounded. A watchdog process stops ZooKeeper and the brokers
if the harness process dies without running its cleanup (SIGKILL, ctest timeout).

Reference mode: with VARVE_CLUSTER_KAFKA_HOME=<dir with libs/*.jar of Apache Kafka 4.x> the
same cluster runs Apache Kafka instead of Varve, to validate a test against Kafka itself:
one KRaft controller process (node.id 3000, D/controller/) takes ZooKeeper's place and the
brokers (process.roles=broker) reach it through the same per-broker proxies, so kill, pause
and isolate mean the same thing. zk_start/zk_stop start and stop that controller.

Thread-safety: Cluster methods are meant to be called from one thread; the proxies run on
their own threads and their state is guarded by a lock per proxy.
"""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
CLUSTER_SH = os.path.join(REPO, "scripts", "cluster.sh")


class ClusterError(Exception):
    """A cluster operation did not complete (within its time bound)."""


def log(msg):
    now = time.time()
    print(f"[cluster {time.strftime('%H:%M:%S', time.gmtime(now))}.{int(now * 1000) % 1000:03d}] {msg}",
          flush=True)


_handed_out = set()  # every port free_port() returned in this process
_handed_out_lock = threading.Lock()


def free_port():
    """A loopback port that is free now and that this process has not handed out before, so
    that a port chosen for a broker (which binds it later) is never given to a proxy."""
    with _handed_out_lock:
        for _ in range(1000):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise ClusterError("no free loopback port")


def port_open(port, timeout=0.2):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout):
            return True
    except OSError:
        return False


def wait_until(pred, timeout, what, interval=0.1):
    """Polls pred() until it returns a truthy value (returned) or timeout seconds pass
    (ClusterError naming `what`)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# ---- socket ownership through /proc ---------------------------------------------------------

def _socket_inode(local_port, remote_port):
    """Inode of the loopback TCP socket 127.0.0.1:local_port -> 127.0.0.1:remote_port, or None.
    Looks in /proc/net/tcp6 too: a dual-stack socket (the JVM's) shows 127.0.0.1 there as the
    IPv4-mapped ::ffff:127.0.0.1."""
    for table, addr in (("/proc/net/tcp", "0100007F"),
                        ("/proc/net/tcp6", "0000000000000000FFFF00000100007F")):
        want_local = f"{addr}:{local_port:04X}"
        want_remote = f"{addr}:{remote_port:04X}"
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[1] == want_local and parts[2] == want_remote:
                        return parts[9]
        except OSError:
            pass
    return None


def _pid_has_socket(pid, inode):
    target = f"socket:[{inode}]"
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return True
            except OSError:
                continue
    except OSError:
        pass
    return False


def _proc_state(pid):
    """The one-letter state of a process (R, S, T, Z, ...) or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def alive(pid):
    """The process exists and is not a zombie (ZooKeeper's parent is gone, so nothing in
    this process reaps it)."""
    return _proc_state(pid) not in (None, "Z", "X")


# ---- the proxy ------------------------------------------------------------------------------

class _Conn:
    """One accepted connection: the client side, the upstream side (None while black-holed)
    and the broker id of the process that opened it (None when not one of our brokers)."""

    def __init__(self, client, source):
        self.client = client
        self.upstream = None
        self.source = source
        self.held = False  # black-holed: accepted, never forwarded
        self.closed = False

    def close(self):
        if self.closed:
            return
        self.closed = True
        for s in (self.client, self.upstream):
            if s is None:
                continue
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass


class Proxy:
    """Forwards 127.0.0.1:port to 127.0.0.1:target_port, one pair of pump threads per
    connection. blocked_all black-holes every connection; blocked_sources black-holes the
    connections opened by those broker ids. `owner_of(local_port)` maps a connecting socket's
    port to a broker id (or None)."""

    def __init__(self, name, target_port, owner_of):
        self.name = name
        self.target_port = target_port
        self.owner_of = owner_of
        self.lock = threading.Lock()
        self.conns = set()          # guarded by lock
        self.blocked_all = False    # guarded by lock
        self.blocked_sources = set()  # guarded by lock
        self.accepted = 0
        self.blackholed = 0
        # Bound to a port from free_port(), never to port 0: the kernel could hand out a port
        # already chosen for a broker listener that is not bound yet.
        for attempt in range(20):
            self.sock = socket.socket()
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.sock.bind(("127.0.0.1", free_port()))
                break
            except OSError:
                self.sock.close()
                if attempt == 19:
                    raise
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._accept_loop, name=f"proxy-{name}", daemon=True)
        self.thread.start()

    def _blocked(self, conn):
        return self.blocked_all or (conn.source is not None and conn.source in self.blocked_sources)

    def _accept_loop(self):
        while not self.stopping:
            try:
                client, addr = self.sock.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            source = self.owner_of(addr[1], self.port)
            conn = _Conn(client, source)
            with self.lock:
                self.accepted += 1
                self.conns.add(conn)
                if self._blocked(conn):
                    self.blackholed += 1
                    conn.held = True
                    continue  # black hole: keep the socket open, never read or forward
            threading.Thread(target=self._connect_and_pump, args=(conn,), daemon=True).start()

    def _connect_and_pump(self, conn):
        try:
            up = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            up.settimeout(None)
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            self._drop(conn)  # upstream down: the client sees the connection closed
            return
        with self.lock:
            if conn.closed or self._blocked(conn):
                up.close()
                if not conn.closed:
                    conn.close()
                self.conns.discard(conn)
                return
            conn.upstream = up
        threading.Thread(target=self._pump, args=(conn, up, conn.client), daemon=True).start()
        self._pump(conn, conn.client, up)

    def _pump(self, conn, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        self._drop(conn)

    def _drop(self, conn):
        with self.lock:
            self.conns.discard(conn)
            conn.close()

    def block(self, sources=None):
        """Black-holes everything (sources None) or the connections opened by these broker
        ids; drops the matching open connections."""
        with self.lock:
            if sources is None:
                self.blocked_all = True
            else:
                self.blocked_sources |= set(sources)
            victims = [c for c in self.conns if self._blocked(c)]
            for c in victims:
                c.close()
                self.conns.discard(c)
        return len(victims)

    def unblock(self, sources=None):
        """Undoes block(); the black-holed connections are closed so their owners reconnect."""
        with self.lock:
            if sources is None:
                self.blocked_all = False
            else:
                self.blocked_sources -= set(sources)
            held = [c for c in self.conns if c.held and not self._blocked(c)]
            for c in held:
                c.close()
                self.conns.discard(c)

    def close(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            for c in list(self.conns):
                c.close()
            self.conns.clear()


# ---- brokers ------------------------------------------------------------------------------

class Broker:
    """Constant after construction: id, dir, ports, proxies. `proc` changes on restart."""

    def __init__(self, cluster, i):
        self.id = i
        self.dir = os.path.join(cluster.dir, f"broker-{i}")
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "broker.log")
        self.config_path = os.path.join(self.dir, "server.properties")
        self.listen_port = free_port()
        self.admin_port = free_port()
        self.proxy = Proxy(f"broker-{i}", self.listen_port, cluster._owner_of)
        self.zk_proxy = Proxy(f"zk-{i}", cluster.zk_port, cluster._owner_of)
        self.proc = None
        self.stopped = False  # SIGSTOPped
        self.isolated = False

    @property
    def proxy_port(self):
        return self.proxy.port

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def alive(self):
        return self.pid is not None


class Cluster:
    """ZooKeeper + N Varve brokers with proxies. Use as a context manager or call close()."""

    def __init__(self, n=3, overrides=None, dir=None, varve_bin=None, keep=None):
        self.n = n
        self.kafka_home = os.environ.get("VARVE_CLUSTER_KAFKA_HOME")
        self.varve_bin = varve_bin or os.environ.get("VARVE_BIN") or os.path.join(REPO, "build", "varve")
        if self.kafka_home:
            self.varve_bin = "kafka.Kafka"  # what the watchdog looks for in a broker's cmdline
        elif not os.access(self.varve_bin, os.X_OK):
            raise ClusterError(f"no broker binary at {self.varve_bin} (set VARVE_BIN)")
        self.own_dir = dir is None
        self.dir = dir or tempfile.mkdtemp(prefix="varve-cluster.")
        self.keep = keep if keep is not None else os.environ.get("VARVE_KEEP") == "1"
        self.overrides = dict(overrides or {})
        self.zk_port = free_port()
        self.zk_started = False
        self.zk_pid = None
        self.brokers = []
        self.closed = False
        self.watchdog = None
        atexit.register(self.close)

    # -- lifecycle --

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self, timeout=60, apart=False):
        """Starts ZooKeeper and the brokers and waits until each listens. `apart`: every
        broker's listener proxy black-holes the other brokers' connections from the first
        moment, so no controller request reaches another broker until join_brokers()."""
        self._start_watchdog()
        if not self.kafka_home:
            self._snapshot_binary()
        if self.kafka_home:
            self.kafka_cluster_id = self._kafka_cluster_id()
        self.zk_start()
        self.brokers = [Broker(self, i) for i in range(self.n)]
        for b in self.brokers:
            self._write_config(b)
            if self.kafka_home:
                self._kafka_format(b.config_path)
        if apart:
            for b in self.brokers:
                b.proxy.block(sources={o.id for o in self.brokers if o.id != b.id})
        for b in self.brokers:
            self._spawn(b)
        for b in self.brokers:
            self._wait_listening(b, timeout)
        log(f"cluster up in {self.dir}: bootstrap {self.bootstrap()}")

    def _snapshot_binary(self, timeout=60):
        """Copies the broker binary into the cluster dir and runs that copy from then on: a
        rebuild of build/varve in the middle of a run must not change or break the brokers
        (a restart would otherwise exec a half-written file)."""
        src = self.varve_bin
        dst = os.path.join(self.dir, "bin", "varve")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        deadline = time.monotonic() + timeout
        while True:
            before = os.stat(src)
            shutil.copy2(src, dst)
            after = os.stat(src)
            if (before.st_mtime_ns, before.st_size) == (after.st_mtime_ns, after.st_size) and \
                    after.st_size == os.stat(dst).st_size and time.time() - after.st_mtime > 2:
                break
            if time.monotonic() > deadline:
                raise ClusterError(f"{src} kept changing for {timeout}s (being rebuilt?)")
            time.sleep(2)
        self.varve_bin = dst

    def bootstrap(self):
        return ",".join(f"127.0.0.1:{b.proxy_port}" for b in self.brokers)

    def zk_start(self, timeout=60):
        if self.kafka_home:
            return self._kafka_controller_start(timeout)
        r = subprocess.run(["bash", CLUSTER_SH, "zk-start", "--dir", self.dir,
                            "--zk-port", str(self.zk_port)],
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise ClusterError(f"zk-start failed: {r.stdout}{r.stderr}")
        self.zk_started = True
        try:
            with open(os.path.join(self.dir, "zookeeper", "zookeeper.pid")) as f:
                self.zk_pid = int(f.read().strip())
            self._watch(self.zk_pid, "QuorumPeerMain")
        except (OSError, ValueError):
            self.zk_pid = None
        log(r.stdout.strip())

    def zk_stop(self, timeout=60):
        if self.kafka_home:
            return self._kafka_controller_stop(timeout)
        r = subprocess.run(["bash", CLUSTER_SH, "zk-stop", "--dir", self.dir],
                           capture_output=True, text=True, timeout=timeout)
        self.zk_started = False
        # cluster.sh finds ZooKeeper through its pid file; if that is gone (someone removed
        # the cluster dir), stop the pid remembered at start.
        if self.zk_pid is not None and alive(self.zk_pid):
            try:
                with open(f"/proc/{self.zk_pid}/cmdline", "rb") as f:
                    ours = b"QuorumPeerMain" in f.read()
                if ours:
                    os.kill(self.zk_pid, signal.SIGKILL)
                    log(f"zookeeper (pid {self.zk_pid}) stopped by pid")
            except OSError:
                pass
        if r.returncode != 0:
            raise ClusterError(f"zk-stop failed: {r.stdout}{r.stderr}")

    def zk_restart(self):
        """Stops ZooKeeper (SIGTERM through cluster.sh) and starts it again on the same port
        and data."""
        self.zk_stop()
        self.zk_start()

    def _write_config(self, b):
        os.makedirs(b.data, exist_ok=True)
        if self.kafka_home:
            return self._write_kafka_config(b)
        props = {
            "node.id": b.id,
            "listeners": f"PLAINTEXT://127.0.0.1:{b.listen_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{b.proxy_port}",
            "admin.listeners": f"http://127.0.0.1:{b.admin_port}",
            "log.dirs": b.data,
            "zookeeper.connect": f"127.0.0.1:{b.zk_proxy.port}/varve",
            "zookeeper.session.timeout.ms": 6000,
            "replica.lag.time.max.ms": 5000,
            "default.replication.factor": min(self.n, 3),
            "offsets.topic.replication.factor": min(self.n, 3),
            "transaction.state.log.replication.factor": min(self.n, 3),
            "group.initial.rebalance.delay.ms": 0,
        }
        props.update(self.overrides)
        with open(b.config_path, "w") as f:
            f.write(f"# Generated by tests/cluster/lib/cluster.py: broker {b.id} of {self.n}\n")
            for k, v in props.items():
                f.write(f"{k}={v}\n")

    def _kafka_common(self):
        return {
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "broker.session.timeout.ms": 6000,
            "broker.heartbeat.interval.ms": 1000,
            "replica.lag.time.max.ms": 5000,
            "default.replication.factor": min(self.n, 3),
            "offsets.topic.replication.factor": min(self.n, 3),
            "transaction.state.log.replication.factor": min(self.n, 3),
            "group.initial.rebalance.delay.ms": 0,
        }

    @staticmethod
    def _write_props(path, header, props):
        with open(path, "w") as f:
            f.write(f"# Generated by tests/cluster/lib/cluster.py: {header}\n")
            for k, v in props.items():
                f.write(f"{k}={v}\n")

    def _write_kafka_config(self, b):
        props = self._kafka_common()
        props.update({
            "process.roles": "broker",
            "node.id": b.id,
            # The broker reaches the controller through its own proxy.
            "controller.quorum.voters": f"{self.KAFKA_CONTROLLER_ID}@127.0.0.1:{b.zk_proxy.port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{b.listen_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{b.proxy_port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": b.data,
        })
        props.update(self.overrides)
        self._write_props(b.config_path, f"Apache Kafka broker {b.id} of {self.n}", props)

    KAFKA_CONTROLLER_ID = 3000

    def _kafka_java(self):
        return ["java", "-Xmx512m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-cp", os.path.join(self.kafka_home, "libs", "*")]

    @staticmethod
    def _kafka_cluster_id():
        import base64
        import uuid
        return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")

    def _kafka_format(self, config_path):
        r = subprocess.run(self._kafka_java() + ["kafka.tools.StorageTool", "format", "-t",
                                                 self.kafka_cluster_id, "-c", config_path],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise ClusterError(f"kafka storage format failed: {r.stdout}{r.stderr}")

    def _kafka_controller_start(self, timeout):
        d = os.path.join(self.dir, "controller")
        cfg = os.path.join(d, "server.properties")
        if not os.path.exists(cfg):
            os.makedirs(os.path.join(d, "data"), exist_ok=True)
            props = self._kafka_common()
            props.update({
                "process.roles": "controller",
                "node.id": self.KAFKA_CONTROLLER_ID,
                "controller.quorum.voters": f"{self.KAFKA_CONTROLLER_ID}@127.0.0.1:{self.zk_port}",
                "listeners": f"CONTROLLER://127.0.0.1:{self.zk_port}",
                "log.dirs": os.path.join(d, "data"),
            })
            props.update(self.overrides)
            self._write_props(cfg, "Apache Kafka KRaft controller", props)
            self._kafka_format(cfg)
        with open(os.path.join(d, "controller.log"), "ab") as logf:
            self.kafka_controller = subprocess.Popen(
                [*self._kafka_java(), "kafka.Kafka", cfg], stdout=logf, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        with open(os.path.join(d, "controller.pid"), "w") as f:
            f.write(f"{self.kafka_controller.pid}\n")
        self._watch(self.kafka_controller.pid, "kafka.Kafka")
        self.zk_started = True
        wait_until(lambda: port_open(self.zk_port), timeout, "the Kafka controller to listen")
        log(f"kafka controller: pid {self.kafka_controller.pid}, 127.0.0.1:{self.zk_port}")

    def _kafka_controller_stop(self, timeout):
        p = self.kafka_controller
        self.zk_started = False
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(30)

    def _spawn(self, b):
        with open(b.log_path, "ab") as logf:
            logf.write(f"==== harness: starting broker {b.id} at {time.strftime('%H:%M:%S')}\n".encode())
            logf.flush()
            cmd = ([*self._kafka_java(), "kafka.Kafka", b.config_path] if self.kafka_home
                   else [self.varve_bin, "broker", b.config_path])
            b.proc = subprocess.Popen(cmd, stdout=logf,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        with open(os.path.join(b.dir, "broker.pid"), "w") as f:
            f.write(f"{b.proc.pid}\n")
        self._watch(b.proc.pid, "kafka.Kafka" if self.kafka_home else self.varve_bin)
        b.stopped = False

    def _wait_listening(self, b, timeout):
        def up():
            if b.proc.poll() is not None:
                raise ClusterError(f"broker {b.id} exited with {b.proc.returncode} during start-up; "
                                   f"log tail:\n{self.log_tail(b.id)}")
            return port_open(b.listen_port)
        wait_until(up, timeout, f"broker {b.id} to listen on {b.listen_port}")

    def log_tail(self, i, lines=40):
        try:
            with open(self.brokers[i].log_path, "rb") as f:
                return b"".join(f.readlines()[-lines:]).decode(errors="replace")
        except OSError as e:
            return f"(no log: {e})"

    def log_grep(self, i, needle, limit=20):
        """The last `limit` lines of broker i's log containing `needle`."""
        try:
            with open(self.brokers[i].log_path, "rb") as f:
                hits = [l.decode(errors="replace").rstrip() for l in f if needle.encode() in l]
            return hits[-limit:]
        except OSError:
            return []

    # -- faults --

    def kill(self, i, timeout=30):
        """SIGKILL broker i and wait for it to be gone."""
        b = self.brokers[i]
        if b.pid is None:
            return
        os.kill(b.proc.pid, signal.SIGKILL)
        b.proc.wait(timeout)
        b.stopped = False
        log(f"broker {i}: SIGKILL")

    def terminate(self, i, timeout=60):
        """SIGTERM broker i (controlled shutdown) and wait; SIGKILL after `timeout`."""
        b = self.brokers[i]
        if b.pid is None:
            return
        if b.stopped:
            self.cont(i)
        os.kill(b.proc.pid, signal.SIGTERM)
        try:
            b.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"broker {i}: did not stop on SIGTERM within {timeout}s; SIGKILL")
            os.kill(b.proc.pid, signal.SIGKILL)
            b.proc.wait(30)
        log(f"broker {i}: stopped (SIGTERM)")

    def stop_all(self, graceful=True):
        """Stops every broker (SIGTERM, i.e. controlled shutdown, when graceful, else SIGKILL;
        a paused broker is continued first) and then ZooKeeper. The cluster can be started
        again broker by broker with zk_start() and restart(i)."""
        for b in self.brokers:  # paused brokers first: a controlled shutdown needs the others
            if b.pid is not None and b.stopped:
                self.cont(b.id)
        for b in self.brokers:
            if b.pid is not None:
                if graceful:
                    self.terminate(b.id)
                else:
                    self.kill(b.id)
        if self.zk_started:
            self.zk_stop()

    def restart(self, i, timeout=60):
        """Starts broker i again with the same config and data (kills it first if it runs).

        A broker restarted right after SIGKILL finds its registration from the previous
        ZooKeeper session still there until that session expires, and refuses to start
        ("already registered"; Kafka's ZooKeeper-mode brokers do the same). Like a service
        manager, restart() then starts it again, once a second, within `timeout`."""
        b = self.brokers[i]
        if b.pid is not None:
            self.kill(i)
        deadline = time.monotonic() + timeout
        attempts = 0
        while True:
            attempts += 1
            self._spawn(b)
            try:
                self._wait_listening(b, max(1, deadline - time.monotonic()))
                break
            except ClusterError:
                refused = b.proc.poll() is not None and any(
                    "already registered" in l for l in self._log_since_last_start(b))
                if not refused or time.monotonic() >= deadline:
                    raise
                time.sleep(1)
        again = f" after {attempts} attempts" if attempts > 1 else ""
        log(f"broker {i}: restarted (pid {b.proc.pid}){again}")

    @staticmethod
    def _log_since_last_start(b):
        try:
            with open(b.log_path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return []
        for k in range(len(lines) - 1, -1, -1):
            if lines[k].startswith("==== harness: starting"):
                return lines[k:]
        return lines

    def stop(self, i):
        """SIGSTOP broker i."""
        b = self.brokers[i]
        if b.pid is None:
            raise ClusterError(f"broker {i} is not running")
        os.kill(b.proc.pid, signal.SIGSTOP)
        b.stopped = True
        wait_until(lambda: _proc_state(b.proc.pid) in ("T", "t"), 10, f"broker {i} to stop")
        log(f"broker {i}: SIGSTOP")

    def cont(self, i):
        """SIGCONT broker i."""
        b = self.brokers[i]
        if b.pid is None:
            raise ClusterError(f"broker {i} is not running")
        os.kill(b.proc.pid, signal.SIGCONT)
        b.stopped = False
        log(f"broker {i}: SIGCONT")

    def isolate(self, i):
        """Cuts broker i off from clients, the other brokers and ZooKeeper."""
        b = self.brokers[i]
        dropped = b.proxy.block() + b.zk_proxy.block()
        for o in self.brokers:
            if o.id != i:
                dropped += o.proxy.block(sources={i}) + o.zk_proxy.block(sources={i})
        b.isolated = True
        log(f"broker {i}: isolated ({dropped} connections dropped)")

    def heal(self, i):
        """Undoes isolate(i)."""
        b = self.brokers[i]
        b.proxy.unblock()
        b.zk_proxy.unblock()
        for o in self.brokers:
            if o.id != i:
                o.proxy.unblock(sources={i})
                o.zk_proxy.unblock(sources={i})
        b.isolated = False
        log(f"broker {i}: healed")

    def join_brokers(self):
        """Undoes start(apart=True): the black-holed connections between brokers are closed
        and new ones are forwarded."""
        for b in self.brokers:
            b.proxy.unblock(sources={o.id for o in self.brokers if o.id != b.id})
        log("brokers joined")

    def _owner_of(self, local_port, proxy_port):
        """The broker id whose process opened the connection from 127.0.0.1:local_port to
        the proxy on proxy_port, or None."""
        inode = _socket_inode(local_port, proxy_port)
        if inode is None or inode == "0":
            return None
        for b in self.brokers:
            pid = b.pid
            if pid is not None and _pid_has_socket(pid, inode):
                return b.id
        return None

    # -- metadata --

    def healthy_bootstrap(self):
        """Proxy addresses of the brokers that run, are not paused and not isolated (all of
        them when none is)."""
        ok = [b for b in self.brokers if b.alive() and not b.stopped and not b.isolated]
        return ",".join(f"127.0.0.1:{b.proxy_port}" for b in ok) or self.bootstrap()

    def admin(self):
        """A fresh AdminClient bootstrapped from the healthy brokers only, so that metadata
        comes from a broker that is part of the cluster."""
        import logging
        from confluent_kafka.admin import AdminClient
        quiet = logging.getLogger("varve.cluster.admin")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        return AdminClient({"bootstrap.servers": self.healthy_bootstrap(),
                            "socket.timeout.ms": 10000, "logger": quiet})

    def create_topic(self, topic, partitions, rf, config=None, timeout=60):
        """Creates the topic and waits until every partition has a leader and a full ISR."""
        from confluent_kafka.admin import NewTopic
        a = self.admin()
        fs = a.create_topics([NewTopic(topic, partitions, rf, config=config or {})],
                             request_timeout=30, operation_timeout=30)
        try:
            fs[topic].result(timeout)
        except Exception as e:  # KafkaException carries the broker's error
            raise ClusterError(f"create topic {topic} (partitions={partitions} rf={rf}) failed: {e}")
        self.wait_for_isr(topic, rf, timeout, partitions=partitions)

    def partitions(self, topic, timeout=10):
        """{partition: (leader, replicas, isr)} from a metadata request, or {} when the topic
        is unknown or no broker answered in time. Asks for all topics: a metadata request
        naming the topic could auto-create it."""
        try:
            md = self.admin().list_topics(timeout=timeout)
        except Exception:
            return {}
        t = md.topics.get(topic)
        if t is None or t.error is not None and not t.partitions:
            return {}
        return {p.id: (p.leader, list(p.replicas), list(p.isrs)) for p in t.partitions.values()}

    def leader_of(self, topic, partition, timeout=10):
        """The leader's broker id (-1 when none) as the metadata shows it."""
        parts = self.partitions(topic, timeout)
        return parts.get(partition, (-1, [], []))[0]

    def controller(self, timeout=10):
        md = self.admin().list_topics(timeout=timeout)
        return md.controller_id

    def wait_for_leader(self, topic, partition, timeout, exclude=()):
        """Waits until the partition has a live leader not in `exclude`; returns its id."""
        def ok():
            l = self.leader_of(topic, partition)
            if l >= 0 and l not in exclude and self.brokers[l].alive() and not self.brokers[l].isolated:
                return l + 1  # truthy for broker 0
            return None
        return wait_until(ok, timeout, f"{topic}-{partition} to get a leader other than {list(exclude)}",
                          interval=0.25) - 1

    def wait_for_isr(self, topic, size, timeout, partitions=None):
        """Waits until every partition (all `partitions` of them, if given) has a leader and at
        least `size` replicas in its ISR."""
        last = {}

        def ok():
            nonlocal last
            last = self.partitions(topic)
            if not last or (partitions is not None and len(last) != partitions):
                return False
            return all(l >= 0 and len(isr) >= size for l, _, isr in last.values())
        try:
            wait_until(ok, timeout, f"{topic}: ISR of every partition >= {size}", interval=0.25)
        except ClusterError as e:
            raise ClusterError(f"{e}; last metadata {last}")

    def wait_for_isr_exact(self, topic, partition, isr, timeout):
        """Waits until the partition's ISR is exactly the set `isr` (and it has a leader)."""
        want = sorted(isr)
        last = None

        def ok():
            nonlocal last
            last = self.partitions(topic).get(partition)
            return last is not None and last[0] >= 0 and sorted(last[2]) == want
        try:
            wait_until(ok, timeout, f"{topic}-{partition}: ISR {want}", interval=0.25)
        except ClusterError as e:
            raise ClusterError(f"{e}; last (leader, replicas, isr) {last}")

    def report_logs(self, lines=40):
        """Prints each broker's warnings and errors (the last `lines`) and where its log is."""
        for b in self.brokers:
            print(f"---- broker {b.id} log: {b.log_path} (warnings/errors, last {lines})")
            hits = [l for l in self.log_grep(b.id, "", limit=10**6)
                    if " WARN " in l or " ERROR " in l or "FATAL" in l or "harness" in l]
            for l in hits[-lines:]:
                print("  " + l)
        print(f"---- cluster dir: {self.dir}", flush=True)

    # -- teardown --

    def _start_watchdog(self):
        """A separate process that, when this process dies however it dies, kills every
        process the harness registered with _watch (after checking that the pid still runs
        what was started). It keeps the pids in memory: the cluster dir may be gone by then."""
        code = r"""
import os, signal, sys
targets = {}
for line in sys.stdin:  # "PID PATTERN" per started process; EOF when the harness exits
    pid, pattern = line.rstrip("\n").split(" ", 1)
    targets[int(pid)] = pattern
for pid, pattern in targets.items():
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        if pattern in cmd:
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass
"""
        self.watchdog = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                         stdout=subprocess.DEVNULL, text=True,
                                         start_new_session=True)

    def _watch(self, pid, pattern):
        """Registers a started process with the watchdog."""
        if self.watchdog is not None and self.watchdog.poll() is None:
            self.watchdog.stdin.write(f"{pid} {pattern}\n")
            self.watchdog.stdin.flush()

    def close(self):
        if self.closed:
            return
        self.closed = True
        for b in self.brokers:
            b.proxy.unblock()
            b.zk_proxy.unblock()
        for b in self.brokers:
            if b.pid is not None:
                try:
                    if b.stopped:
                        os.kill(b.proc.pid, signal.SIGCONT)
                    os.kill(b.proc.pid, signal.SIGKILL)
                    b.proc.wait(30)
                except (OSError, subprocess.TimeoutExpired):
                    pass
        if self.zk_started:
            try:
                self.zk_stop()
            except Exception as e:
                log(f"zk-stop: {e}")
        for b in self.brokers:
            b.proxy.close()
            b.zk_proxy.close()
        if self.watchdog is not None:
            try:
                self.watchdog.stdin.close()
                self.watchdog.wait(30)
            except Exception:
                pass
        if self.own_dir and not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        elif self.own_dir:
            log(f"kept cluster dir {self.dir}")
