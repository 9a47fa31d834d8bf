#!/usr/bin/env python3
"""No acknowledged record is lost or duplicated while partition leaders fail (issue #4).

Starts ZooKeeper and 3 brokers (tests/cluster/lib/cluster.py), creates a 6-partition topic
with replication factor 3 and min.insync.replicas=2, and runs a verifier (the Java client:
java/…/NoLossVerifier.java, or librdkafka: rdkafka_verifier.py) that produces 100,000 records
with the idempotent producer, acks=all. Production is released in chunks; during each chunk
the current leader of one partition gets a fault, rotating through:

  kill     SIGKILL, wait for a new leader, restart on the same data
  pause    SIGSTOP for longer than zookeeper.session.timeout.ms, wait for a new leader, SIGCONT
  isolate  cut off from clients, brokers and ZooKeeper (proxies) past the session timeout,
           wait for a new leader, heal

(--kinds picks others too:
  expire      only the leader's ZooKeeper connection is cut, past the session timeout: its
              session expires while clients and brokers still reach it; wait for a new
              leader, reconnect
  zk-restart  ZooKeeper is stopped and started again (sessions outlive the short outage))

and after each fault the test waits (bounded) until every partition has its full ISR again.
Then the verifier reads every partition back from the beginning and reports
`acknowledged=N lost=L duplicated=D ...`; the test fails on any loss, duplicate, misplaced or
reordered record, on any record that was never acknowledged, or when fewer faults than
--faults were injected.

Usage: fault_no_loss_test.py --client java|librdkafka [--records N] [--faults F] [--rate R]
                             [--kinds kill,pause,isolate]
Needs tests/cluster/install.sh to have run. Broker binary: $VARVE_BIN or build/varve.
VARVE_KEEP=1 keeps the cluster dir (always kept when the test fails).
"""

import argparse
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import cluster as cl  # noqa: E402

TOPIC = "fault-no-loss"
SESSION_TIMEOUT_S = 6  # zookeeper.session.timeout.ms set by the harness


class TestFailure(Exception):
    pass


class Verifier:
    """The verifier subprocess: stdin carries permits, stdout is parsed on a thread."""

    def __init__(self, cmd, log_path):
        self.lock = threading.Lock()
        self.sent = self.acked = self.failed = 0
        self.produced_line = None
        self.result_line = None
        self.lines = []
        # O_APPEND and line buffering: the verifier's stderr shares this file.
        self.log = open(log_path, "a", buffering=1)
        cl.log("verifier: " + " ".join(cmd))
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, bufsize=1)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.last_report = 0.0

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.log.write(line + "\n")
            with self.lock:
                if line.startswith("progress "):
                    kv = dict(x.split("=") for x in line.split()[1:])
                    self.sent, self.acked, self.failed = (int(kv["sent"]), int(kv["acked"]),
                                                          int(kv["failed"]))
                    if time.monotonic() - self.last_report >= 10:
                        self.last_report = time.monotonic()
                        cl.log(f"producer: {line}")
                    continue
                self.lines.append(line)
                if line.startswith("produced "):
                    self.produced_line = line
                elif line.startswith("acknowledged="):
                    self.result_line = line
            cl.log(f"verifier: {line}")
        self.log.flush()

    def send(self, line):
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise TestFailure(f"verifier exited early (rc={self.proc.poll()}); see {self.log.name}")

    def progress(self):
        with self.lock:
            return self.sent, self.acked, self.failed

    def check_alive(self):
        rc = self.proc.poll()
        if rc is not None and self.result_line is None:
            raise TestFailure(f"verifier exited with {rc} before its result; see {self.log.name}")

    def wait(self, pred, timeout, what):
        def ok():
            self.check_alive()
            return pred()
        try:
            cl.wait_until(ok, timeout, what, interval=0.2)
        except cl.ClusterError as e:
            raise TestFailure(str(e))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def verifier_cmd(client, bootstrap, records, rate):
    common = ["--bootstrap", bootstrap, "--topic", TOPIC, "--partitions", "6",
              "--records", str(records), "--rate", str(rate)]
    if client == "java":
        jar = os.path.join(HERE, "java", "target", "varve-cluster-java.jar")
        if not os.path.exists(jar):
            raise TestFailure(f"{jar} missing; run tests/cluster/install.sh")
        cp = f"{jar}:{os.path.join(HERE, 'java', 'target', 'lib', '*')}"
        return ["java", "-Xmx512m", "-cp", cp, "varve.cluster.NoLossVerifier"] + common
    return [sys.executable, os.path.join(HERE, "rdkafka_verifier.py")] + common


def inject(c, kind, partition):
    """One fault on the current leader of `partition`; returns a description. Returns when
    the fault is over and every partition has its full ISR again."""
    victim = c.leader_of(TOPIC, partition)
    if victim < 0:
        raise TestFailure(f"{TOPIC}-{partition} has no leader before the fault")
    t0 = time.monotonic()
    if kind == "kill":
        c.kill(victim)
        new = c.wait_for_leader(TOPIC, partition, 60, exclude=(victim,))
        time.sleep(2)  # produce for a while with the ISR short of one replica
        c.restart(victim)
    elif kind == "pause":
        c.stop(victim)
        new = c.wait_for_leader(TOPIC, partition, 60, exclude=(victim,))
        # Stay paused well past the session timeout: the broker's session must have expired.
        while time.monotonic() - t0 < SESSION_TIMEOUT_S + 3:
            time.sleep(0.2)
        c.cont(victim)
    elif kind == "isolate":
        c.isolate(victim)
        new = c.wait_for_leader(TOPIC, partition, 60, exclude=(victim,))
        while time.monotonic() - t0 < SESSION_TIMEOUT_S + 3:
            time.sleep(0.2)
        c.heal(victim)
    elif kind == "expire":
        zk = c.brokers[victim].zk_proxy
        zk.block()
        cl.log(f"broker {victim}: ZooKeeper connection cut")
        new = c.wait_for_leader(TOPIC, partition, 60, exclude=(victim,))
        while time.monotonic() - t0 < SESSION_TIMEOUT_S + 3:
            time.sleep(0.2)
        zk.unblock()
        cl.log(f"broker {victim}: ZooKeeper connection restored")
    elif kind == "zk-restart":
        c.zk_stop()
        cl.log("ZooKeeper stopped")
        time.sleep(2)
        c.zk_start()
        new = c.wait_for_leader(TOPIC, partition, 60)
    else:
        raise ValueError(kind)
    moved = time.monotonic() - t0
    c.wait_for_isr(TOPIC, 3, 120, partitions=6)
    target = "ZooKeeper" if kind == "zk-restart" else f"broker {victim}"
    return (f"{kind} {target} (leader of {TOPIC}-{partition} was {victim}): new leader {new}, "
            f"ISR full again after {time.monotonic() - t0:.1f}s (fault held {moved:.1f}s)")


def run(args):
    overrides = {"unclean.leader.election.enable": "false", "num.partitions": 6}
    c = cl.Cluster(3, overrides=overrides)
    verifier = None
    ok = False
    try:
        c.start()
        c.create_topic(TOPIC, 6, 3, {"min.insync.replicas": "2"})
        cl.log(f"topic {TOPIC}: {c.partitions(TOPIC)}")
        verifier = Verifier(verifier_cmd(args.client, c.bootstrap(), args.records, args.rate),
                            os.path.join(c.dir, f"verifier-{args.client}.log"))
        kinds = args.kinds.split(",")
        chunk = args.records // (args.faults + 1)
        faults = []
        started = time.monotonic()
        for k in range(args.faults):
            if time.monotonic() - started > args.time_limit:
                raise TestFailure(f"time limit: {len(faults)} faults took more than "
                                  f"{args.time_limit}s (--time-limit)")
            start_of_chunk = k * chunk
            verifier.send(f"permit {(k + 1) * chunk}")
            # Let the chunk get going so that the fault hits records in flight.
            verifier.wait(lambda: verifier.progress()[1] >= start_of_chunk + chunk // 5, 120,
                          f"the producer to get acknowledgements for records past "
                          f"{start_of_chunk + chunk // 5}")
            sent, acked, _ = verifier.progress()
            kind = kinds[k % len(kinds)]
            desc = inject(c, kind, k % 6)
            faults.append(desc)
            cl.log(f"fault {k + 1}/{args.faults} (sent={sent} acked={acked} when it began): {desc}")
        verifier.send(f"permit {args.records}")
        verifier.wait(lambda: verifier.produced_line is not None,
                      args.records / max(args.rate, 1) + 700, "the producer to finish")
        c.wait_for_isr(TOPIC, 3, 120, partitions=6)
        verifier.send("verify")
        verifier.wait(lambda: verifier.result_line is not None, 300, "the verifier's result")
        try:
            rc = verifier.proc.wait(60)
        except subprocess.TimeoutExpired:
            raise TestFailure("verifier did not exit after printing its result")
        cl.log(f"faults injected: {len(faults)}")
        print(f"{verifier.result_line} faults={len(faults)}", flush=True)
        if rc != 0:
            raise TestFailure(f"verifier failed (rc={rc}): {verifier.result_line}")
        if len(faults) < args.faults:
            raise TestFailure(f"only {len(faults)} of {args.faults} faults injected")
        ok = True
        print(f"PASS fault_no_loss --client {args.client}", flush=True)
    except (TestFailure, cl.ClusterError) as e:
        print(f"FAIL fault_no_loss --client {args.client}: {e}", flush=True)
    finally:
        if verifier is not None:
            verifier.kill()
        if not ok:
            c.keep = True
            if verifier is not None:
                report_verifier_log(verifier)
            c.report_logs()
        c.close()
    return 0 if ok else 1


def report_verifier_log(v):
    v.log.flush()
    print(f"---- verifier log: {v.log.name} (last 30 lines)")
    try:
        with open(v.log.name, errors="replace") as f:
            for l in f.readlines()[-30:]:
                print("  " + l.rstrip())
    except OSError as e:
        print(f"  ({e})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--client", choices=["java", "librdkafka"], required=True)
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--faults", type=int, default=10)
    ap.add_argument("--rate", type=float, default=1000.0,
                    help="records per second the producer sends at (spreads production "
                         "over the faults)")
    ap.add_argument("--time-limit", type=float, default=480,
                    help="seconds the faults may take in all before the test gives up")
    ap.add_argument("--kinds", default="kill,pause,isolate",
                    help="comma-separated fault kinds, used in turn: "
                         "kill, pause, isolate, expire, zk-restart")
    args = ap.parse_args()
    bad = set(args.kinds.split(",")) - {"kill", "pause", "isolate", "expire", "zk-restart"}
    if bad:
        ap.error(f"unknown fault kinds {sorted(bad)}")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
