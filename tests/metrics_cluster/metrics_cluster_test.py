#!/usr/bin/env python3
"""Issue #7, "Must show", first bullet: scraping /metrics during a 3-broker run with one broker
killed shows under-replicated partitions and ISR shrinks, then 0 under-replicated after it
returns; consumer-lag gauges equal produced - committed for a test group.

Runs ZooKeeper + 3 Varve brokers through tests/cluster/lib/cluster.py (each broker has its own
admin listener) and checks, in order:

 1. baseline: topic RF=3, 6 partitions, min.insync.replicas=2; P[p] records produced to
    partition p with acks=all (P differs per partition); every broker reports
    varve_under_replicated_partitions 0.
 2. lag: a consumer group (confluent-kafka, enable.auto.commit=false, subscribe) consumes part
    of the topic and commits C[p] per partition (0 .. P[p], one partition fully, one not at
    all); on the group's coordinator (DescribeConsumerGroups) varve_consumer_group_committed_offset
    == C[p] and varve_consumer_group_lag == P[p] - C[p] for every partition, exactly; no other
    broker exports series for the group.
 3. kill: SIGKILL of a broker that is not the controller and leads at least one partition
    of the topic (preferably not the coordinator; the survivors lead the others). Within a bound: the metadata shows every partition led by
    a survivor and the dead broker in no ISR, and on the surviving brokers
    sum(varve_under_replicated_partitions) equals the number of partitions (of every topic,
    __consumer_offsets included) that have the dead broker as a replica,
    sum(varve_isr_shrinks_total) increased, and the active controller's
    varve_leader_elections_total increased (the dead broker led something);
    sum(varve_at_min_isr_partitions) == 6 (ISR 2 = min.insync.replicas),
    varve_under_min_isr_partitions and varve_offline_partitions 0.
 4. restart: within a bound, the metadata shows a full ISR everywhere,
    varve_under_replicated_partitions is 0 on every broker and sum(varve_isr_expands_total)
    over the brokers that stayed up increased.
 5. lag again after the fault: the same exact equalities on the (possibly new) coordinator.

Prints one `phase ...` line per phase and finally `PASS metrics_cluster_scrape` or
`FAIL metrics_cluster_scrape: <what, with the last values seen>` (then the brokers' warnings and
errors, and the cluster dir is kept). Every wait is bounded.

Options: --victim coordinator kills the group coordinator instead (even when it is the
controller; then the new controller's election counter is checked), so step 5 checks the lag
gauges after a coordinator failover.
"""

import argparse
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "cluster", "lib"))
import cluster as cl  # noqa: E402
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition  # noqa: E402

TOPIC = "metrics-cluster"
GROUP = "metrics-cluster-group"
PARTITIONS = 6
# Records per partition (all different, so a lag reported for the wrong partition shows).
PRODUCED = {p: 300 + 70 * p for p in range(PARTITIONS)}
# Committed offset per partition: 0 for partition 0, everything for the last one.
COMMITTED = {p: PRODUCED[p] * p // (PARTITIONS - 1) for p in range(PARTITIONS)}

KILL_BOUND_S = 60      # ZooKeeper session 6 s + replica.lag.time.max.ms 5 s, with margin
RESTART_BOUND_S = 120
LAG_BOUND_S = 60


class TestFailure(Exception):
    pass


def quiet_logger():
    q = logging.getLogger("varve.metrics_cluster.quiet")
    q.addHandler(logging.NullHandler())
    q.propagate = False
    return q


def say(msg):
    print(f"[metrics_cluster {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- scraping ------------------------------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \S+)?$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def parse_metrics(text):
    """[(name, {label: value}, float)] of a Prometheus text-format body; raises TestFailure on
    a line it cannot parse."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise TestFailure(f"malformed /metrics line: {line!r}")
        labels = {}
        rest = m.group(2) or ""
        pos = 0
        while pos < len(rest):
            lm = _LABEL.match(rest, pos)
            if not lm:
                raise TestFailure(f"malformed labels in /metrics line: {line!r}")
            labels[lm.group(1)] = lm.group(2).replace('\\"', '"').replace("\\\\", "\\")
            pos = lm.end()
        out.append((m.group(1), labels, float(m.group(3))))
    return out


class Scrape:
    def __init__(self, broker_id, samples):
        self.broker = broker_id
        self.samples = samples

    def series(self, name, **labels):
        return [(l, v) for n, l, v in self.samples
                if n == name and all(l.get(k) == str(x) for k, x in labels.items())]

    def value(self, name):
        """The single unlabelled sample of `name` (TestFailure when absent or repeated)."""
        found = [v for l, v in self.series(name) if not l]
        if len(found) != 1:
            raise TestFailure(f"broker {self.broker}: {name} has {len(found)} unlabelled samples")
        return found[0]

    def per_partition(self, name, **labels):
        """{partition: value} of a metric labelled with partition (and `labels`)."""
        return {int(l["partition"]): v for l, v in self.series(name, **labels)}


def scrape(c, i, timeout=10):
    """Broker i's /metrics, or None when it does not answer (dead, starting)."""
    b = c.brokers[i]
    if not b.alive():
        return None
    url = f"http://127.0.0.1:{b.admin_port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            if r.status != 200:
                return None
            body = r.read().decode()
    except (OSError, urllib.error.URLError):
        return None
    return Scrape(i, parse_metrics(body))


def scrape_all(c, ids=None):
    ids = range(c.n) if ids is None else ids
    return {i: scrape(c, i) for i in ids}


def poll(what, bound, check):
    """Calls check() until it returns (True, detail) or `bound` seconds pass; check returns
    (ok, detail) where detail describes the last values seen. Returns (seconds, detail)."""
    start = time.monotonic()
    detail = "never checked"
    while True:
        ok, detail = check()
        if ok:
            return time.monotonic() - start, detail
        if time.monotonic() - start > bound:
            raise TestFailure(f"{what} not seen within {bound}s; last: {detail}")
        time.sleep(0.5)


def ready(c, i):
    b = c.brokers[i]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{b.admin_port}/v1/status/ready",
                                    timeout=5) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError):
        return False


# ---- clients -------------------------------------------------------------------------------

def produce(c):
    """PRODUCED[p] records to partition p with acks=all; checks every acknowledgement (offsets
    0..P[p]-1 per partition)."""
    acked = {p: [] for p in range(PARTITIONS)}
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[msg.partition()].append(msg.offset())

    pr = Producer({"bootstrap.servers": c.bootstrap(), "acks": "all", "enable.idempotence": True,
                   "linger.ms": 5, "message.timeout.ms": 60000, "logger": quiet_logger()})
    for p in range(PARTITIONS):
        for k in range(PRODUCED[p]):
            pr.produce(TOPIC, key=f"k{p}-{k}".encode(), value=f"v{p}-{k}".encode(), partition=p,
                       on_delivery=on_delivery)
            pr.poll(0)
    left = pr.flush(90)
    if left or errors:
        raise TestFailure(f"produce: {left} undelivered, {len(errors)} errors "
                          f"(first: {errors[0] if errors else None})")
    for p in range(PARTITIONS):
        if sorted(acked[p]) != list(range(PRODUCED[p])):
            raise TestFailure(f"partition {p}: acknowledged offsets are not 0..{PRODUCED[p] - 1}")


def consume_and_commit(c):
    """Joins GROUP, consumes every partition up to COMMITTED[p] (at least), commits exactly
    COMMITTED[p] for each partition synchronously and leaves the group."""
    con = Consumer({"bootstrap.servers": c.bootstrap(), "group.id": GROUP,
                    "enable.auto.commit": False, "auto.offset.reset": "earliest",
                    "session.timeout.ms": 10000, "logger": quiet_logger()})
    try:
        con.subscribe([TOPIC])
        seen = {p: 0 for p in range(PARTITIONS)}  # next offset to see per partition
        want = {p: max(COMMITTED[p], 1) for p in range(PARTITIONS)}
        deadline = time.monotonic() + 90
        while any(seen[p] < want[p] for p in range(PARTITIONS)):
            if time.monotonic() > deadline:
                raise TestFailure(f"consumer group: positions {seen}, wanted {want} within 90s "
                                  f"(assignment {[tp.partition for tp in con.assignment()]})")
            for m in con.consume(500, 0.5):
                if m.error() is not None:
                    continue
                seen[m.partition()] = max(seen[m.partition()], m.offset() + 1)
        offsets = [TopicPartition(TOPIC, p, COMMITTED[p]) for p in range(PARTITIONS)]
        try:
            result = con.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            raise TestFailure(f"commit of {COMMITTED} failed: {e}")
        bad = [(tp.partition, tp.error) for tp in result if tp.error is not None]
        if bad:
            raise TestFailure(f"commit failed: {bad}")
        try:
            back = con.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=30)
        except KafkaException as e:
            raise TestFailure(f"OffsetFetch after the commit failed: {e}")
        got = {tp.partition: tp.offset for tp in back}
        if got != COMMITTED:
            raise TestFailure(f"OffsetFetch after commit returned {got}, committed {COMMITTED}")
    finally:
        con.close()


def fetch_committed(c):
    """{partition: offset} the group's coordinator answers to OffsetFetch (a diagnostic), or
    the error as a string."""
    con = Consumer({"bootstrap.servers": c.healthy_bootstrap(), "group.id": GROUP,
                    "enable.auto.commit": False, "logger": quiet_logger()})
    try:
        back = con.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=20)
        return {tp.partition: tp.offset for tp in back}
    except KafkaException as e:
        return f"error {e}"
    finally:
        con.close()


def coordinator_of(c):
    a = c.admin()
    fs = a.describe_consumer_groups([GROUP], request_timeout=15)
    try:
        return fs[GROUP].result(30).coordinator.id
    except Exception as e:
        raise TestFailure(f"DescribeConsumerGroups({GROUP}) failed: {e}")


def check_lag(c, label):
    """Waits (bounded) until the coordinator's committed-offset and lag gauges equal COMMITTED
    and PRODUCED - COMMITTED for every partition; fails if another broker exports a different
    committed offset for the group (a stale copy)."""
    want_lag = {p: PRODUCED[p] - COMMITTED[p] for p in range(PARTITIONS)}
    coord = [None]

    def ok():
        try:
            coord[0] = coordinator_of(c)
        except TestFailure as e:
            return False, str(e)
        s = scrape(c, coord[0])
        if s is None:
            return False, f"coordinator {coord[0]} does not answer /metrics"
        committed = s.per_partition("varve_consumer_group_committed_offset", group=GROUP, topic=TOPIC)
        lag = s.per_partition("varve_consumer_group_lag", group=GROUP, topic=TOPIC)
        committed = {p: int(v) for p, v in committed.items()}
        lag = {p: int(v) for p, v in lag.items()}
        detail = (f"coordinator {coord[0]}: committed_offset {committed} (want {COMMITTED}), "
                  f"lag {lag} (want {want_lag})")
        return committed == COMMITTED and lag == want_lag, detail

    try:
        took, detail = poll(f"{label}: lag gauges equal produced - committed", LAG_BOUND_S, ok)
    except TestFailure as e:
        raise TestFailure(f"{e}; OffsetFetch for the group answers {fetch_committed(c)}")
    others = {}
    for i, s in scrape_all(c, [i for i in range(c.n) if i != coord[0]]).items():
        if s is None:
            continue
        mine = s.per_partition("varve_consumer_group_committed_offset", group=GROUP, topic=TOPIC)
        if mine:
            others[i] = {p: int(v) for p, v in mine.items()}
    if others:
        raise TestFailure(f"{label}: brokers other than the coordinator {coord[0]} export "
                          f"committed offsets of {GROUP}: {others} (a stale copy double-counts lag)")
    say(f"phase {label}: {detail} after {took:.1f}s; no other broker exports the group")
    return coord[0]


# ---- the test ------------------------------------------------------------------------------

def sums(scrapes, name):
    return sum(s.value(name) for s in scrapes.values() if s is not None)


def all_partitions(c):
    """{(topic, partition): (leader, replicas, isr)} of every topic (internal ones included)
    from a metadata request to the healthy brokers, or {} when none answered."""
    try:
        md = c.admin().list_topics(timeout=10)
    except Exception:
        return {}
    return {(t.topic, p.id): (p.leader, list(p.replicas), list(p.isrs))
            for t in md.topics.values() for p in t.partitions.values()}


def describe(md):
    return {p: v for (t, p), v in sorted(md.items()) if t == TOPIC}


def run(victim_kind):
    c = cl.Cluster(3, overrides={"unclean.leader.election.enable": "false"})
    ok = False
    try:
        c.start()
        poll("/v1/status/ready on every broker", 60,
             lambda: (all(ready(c, i) for i in range(c.n)),
                      {i: ready(c, i) for i in range(c.n)}))
        c.create_topic(TOPIC, PARTITIONS, 3, {"min.insync.replicas": "2"})
        produce(c)

        def all_zero():
            s = scrape_all(c)
            if any(v is None for v in s.values()):
                return False, f"no /metrics from {[i for i, v in s.items() if v is None]}"
            urp = {i: v.value("varve_under_replicated_partitions") for i, v in s.items()}
            return all(x == 0 for x in urp.values()), f"under_replicated {urp}"
        took, detail = poll("under-replicated 0 on every broker before the fault", 30, all_zero)
        say(f"phase baseline: produced {sum(PRODUCED.values())} records {PRODUCED}; {detail}")

        consume_and_commit(c)
        coord = check_lag(c, "lag")

        # Pick the victim. Default: not the controller, leading at least one partition of the
        # topic, preferably not the coordinator. --victim coordinator: the coordinator (which
        # leads the group's __consumer_offsets partition), even when it is the controller.
        # leading at least one partition of the topic.
        before = scrape_all(c)
        if any(v is None for v in before.values()):
            raise TestFailure(f"no /metrics from {[i for i, v in before.items() if v is None]}")
        controllers = [i for i, s in before.items() if s.value("varve_active_controller") == 1]
        if len(controllers) != 1:
            raise TestFailure(f"varve_active_controller is 1 on brokers {controllers}, want exactly one")
        controller = controllers[0]
        md_controller = c.controller()
        if md_controller != controller:
            raise TestFailure(f"metadata names controller {md_controller}, "
                              f"varve_active_controller names {controller}")
        parts = c.partitions(TOPIC)
        led = {i: [p for p, (l, _, _) in parts.items() if l == i] for i in range(c.n)}
        if victim_kind == "coordinator":
            candidates = [coord]
        else:
            candidates = [i for i in range(c.n) if i != controller and led[i]]
            candidates.sort(key=lambda i: i == coord)  # keep the coordinator up if possible
        if not candidates:
            raise TestFailure(f"no broker to kill: controller {controller}, coordinator {coord}, "
                              f"leaders {led}")
        victim = candidates[0]
        survivors = [i for i in range(c.n) if i != victim]
        if not any(led[i] for i in survivors):
            raise TestFailure(f"survivors {survivors} lead nothing ({led}): no ISR shrink to see")
        shrinks0 = sums({i: before[i] for i in survivors}, "varve_isr_shrinks_total")
        expands0 = sums({i: before[i] for i in survivors}, "varve_isr_expands_total")
        elections0 = {i: s.value("varve_leader_elections_total") for i, s in before.items()}
        say(f"before the fault: controller {controller}, coordinator {coord}, leaders {led}, "
            f"survivors' isr_shrinks {shrinks0:.0f} isr_expands {expands0:.0f}, "
            f"leader_elections {elections0}; killing broker {victim}")

        c.kill(victim)

        def degraded():
            md = all_partitions(c)
            s = scrape_all(c, survivors)
            if any(v is None for v in s.values()):
                return False, f"no /metrics from {[i for i, v in s.items() if v is None]}"
            urp = {i: v.value("varve_under_replicated_partitions") for i, v in s.items()}
            shrinks = sums(s, "varve_isr_shrinks_total")
            # The controller afterwards: the same one, or a survivor when the victim was it.
            active = [i for i, v in s.items() if v.value("varve_active_controller") == 1]
            now_controller = active[0] if len(active) == 1 else None
            elections = (s[now_controller].value("varve_leader_elections_total")
                         if now_controller is not None else float("nan"))
            was = elections0[now_controller] if now_controller is not None else float("nan")
            # Settled: every partition led by a survivor, the dead broker in no ISR. Then each
            # partition that has the dead broker as a replica is under-replicated on its leader.
            stale = sorted(tp for tp, (l, _, isr) in md.items() if l < 0 or l == victim or victim in isr)
            want_urp = sum(1 for _, reps, _ in md.values() if victim in reps)
            # The topic's partitions now have ISR 2 = min.insync.replicas: at, not under, the
            # minimum (__consumer_offsets has the default min.insync.replicas=1).
            at_min = {i: v.value("varve_at_min_isr_partitions") for i, v in s.items()}
            under_min = {i: v.value("varve_under_min_isr_partitions") for i, v in s.items()}
            offline = {i: v.value("varve_offline_partitions") for i, v in s.items()}
            good = (bool(md) and not stale and sum(urp.values()) == want_urp
                    and shrinks > shrinks0 and elections > was
                    and sum(at_min.values()) == PARTITIONS and sum(under_min.values()) == 0
                    and sum(offline.values()) == 0)
            return good, (f"at_min_isr {at_min} (want sum {PARTITIONS}), under_min_isr "
                          f"{under_min} (want 0), offline {offline} (want 0), "
                          f"under_replicated {urp} (want sum {want_urp}: partitions with replica "
                          f"{victim}), isr_shrinks {shrinks:.0f} (was {shrinks0:.0f}), active "
                          f"controller(s) {active}: leader_elections {elections:.0f} (was "
                          f"{was:.0f}), "
                          f"partitions still led by {victim}, leaderless or with {victim} in the "
                          f"ISR: {stale[:8]}{'...' if len(stale) > 8 else ''} ({len(stale)}), "
                          f"{TOPIC} (leader, replicas, isr): {describe(md)}")
        took, detail = poll(f"with broker {victim} killed: under-replicated, ISR shrinks and "
                            f"leader elections", KILL_BOUND_S, degraded)
        say(f"phase kill: {detail} after {took:.1f}s")

        c.restart(victim)

        def recovered():
            md = all_partitions(c)
            s = scrape_all(c)
            if any(v is None for v in s.values()):
                return False, f"no /metrics from {[i for i, v in s.items() if v is None]}"
            urp = {i: v.value("varve_under_replicated_partitions") for i, v in s.items()}
            expands = sums({i: s[i] for i in survivors}, "varve_isr_expands_total")
            short = sorted(tp for tp, (l, reps, isr) in md.items() if l < 0 or sorted(isr) != sorted(reps))
            good = bool(md) and not short and all(x == 0 for x in urp.values()) and expands > expands0
            return good, (f"under_replicated {urp} (want 0 everywhere), survivors' isr_expands "
                          f"{expands:.0f} (was {expands0:.0f}), partitions without a full ISR: "
                          f"{short[:8]}{'...' if len(short) > 8 else ''} ({len(short)}), "
                          f"{TOPIC} (leader, replicas, isr): {describe(md)}")
        took, detail = poll(f"after broker {victim} restarted: under-replicated 0 and ISR expands",
                            RESTART_BOUND_S, recovered)
        say(f"phase restart: {detail} after {took:.1f}s")

        check_lag(c, "lag-after-fault")
        ok = True
        print("PASS metrics_cluster_scrape", flush=True)
    except (TestFailure, cl.ClusterError) as e:
        print(f"FAIL metrics_cluster_scrape: {e}", flush=True)
        for b in c.brokers:
            if b.proc is not None and b.proc.poll() is not None:
                how = ("SIGKILL by the test" if b.proc.returncode == -9
                       else f"exit status {b.proc.returncode} (negative: killed by signal)")
                print(f"broker {b.id} is not running: {how}", flush=True)
    finally:
        if not ok:
            c.keep = True
            c.report_logs()
        c.close()
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--victim", choices=["leader", "coordinator"], default="leader",
                    help="which broker to kill: a non-controller partition leader (default) or "
                         "the group coordinator")
    args = ap.parse_args()
    return run(args.victim)


if __name__ == "__main__":
    sys.exit(main())
