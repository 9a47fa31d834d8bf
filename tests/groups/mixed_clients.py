"""groups_mixed_clients: a Java (KafkaConsumer), a librdkafka (confluent-kafka) and a franz-go
member in one consumer group, all with the same assignment strategy (argv[1], default range).

A 6-partition topic gets 6,000 keyed records in three rounds of 2,000:
  1. all three members: every partition is owned by exactly one member;
  2. the librdkafka member closes cleanly (LeaveGroup): Java + franz-go own all partitions;
  3. the Java member is SIGKILLed while processing: franz-go owns all partitions within the
     session timeout (6 s) plus one heartbeat and slack.
Every member processes, then commits; across the run every record must be processed at least
once (none skipped), committed offsets must equal the log end offsets at the end, duplicates
are reported. Members write their events to files (see member_rdkafka.py for the format).
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PARTITIONS = 6
ROUND = 2000
SESSION_S = 6.0
SLEEP_MS = 2  # per-record "processing" time, so a kill lands mid-batch


class Fail(Exception):
    pass


def require(cond, msg):
    if not cond:
        raise Fail(msg)


class Member:
    def __init__(self, name, argv, path):
        self.name, self.path = name, path
        self.log = open(path + ".stderr", "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)

    def lines(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                return [l.rstrip("\n") for l in f if l.endswith("\n")]
        except FileNotFoundError:
            return []

    def owned(self):
        last = None
        for l in self.lines():
            if l.startswith("ASSIGN"):
                last = l[len("ASSIGN"):].strip()
        if last is None:
            return None
        return frozenset(int(p) for p in last.split(",") if p)

    def recs(self):
        out = []
        for l in self.lines():
            if l.startswith("REC "):
                _, p, o, k = l.split(" ", 3)
                out.append((int(p), int(o), k))
        return out

    def alive(self):
        return self.proc.poll() is None

    def stderr_tail(self):
        try:
            with open(self.path + ".stderr", "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except FileNotFoundError:
            return ""


def wait_for(what, timeout, cond, describe):
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return
        if time.monotonic() > deadline:
            raise Fail(f"{what}: not reached within {timeout:.0f}s; {describe()}")
        time.sleep(0.05)


def wait_balanced(members, timeout, what):
    """Until the live members' owned sets are disjoint and cover every partition, 1.5s stable."""
    state = {"last": None, "since": None}

    def snapshot():
        return {m.name: m.owned() for m in members}

    def cond():
        for m in members:
            require(m.alive(), f"{what}: member {m.name} exited: {m.stderr_tail()}")
        snap = snapshot()
        sets = list(snap.values())
        ok = all(s is not None and s for s in sets) and \
            sum(len(s) for s in sets) == PARTITIONS and \
            set().union(*sets) == set(range(PARTITIONS))
        if not ok or snap != state["last"]:
            state["last"], state["since"] = snap, (time.monotonic() if ok else None)
            return False
        return time.monotonic() - state["since"] >= 1.5

    wait_for(what, timeout, cond, lambda: f"owned: {fmt(snapshot())}")
    snap = snapshot()
    print(f"{what}: balanced {fmt(snap)}", flush=True)
    return snap, state["since"]


def fmt(snap):
    return " ".join(f"{n}={sorted(s) if s is not None else None}" for n, s in snap.items())


def main():
    strategy = sys.argv[1] if len(sys.argv) > 1 else "range"
    bootstrap = os.environ["VARVE_BOOTSTRAP"]
    stamp = str(time.time_ns())
    topic, group = f"groups-mixed-{stamp}", f"groups-mixed-{stamp}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futs = admin.create_topics([NewTopic(topic, PARTITIONS, 1)], operation_timeout=30)
    futs[topic].result(timeout=60)

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                         "client.id": "groups-mixed-producer"})
    acked = {}  # key -> (partition, offset)
    errors = []

    def produce_round(r):
        def cb(err, msg):
            if err:
                errors.append(str(err))
            else:
                acked[msg.key().decode()] = (msg.partition(), msg.offset())
        for i in range(r * ROUND, (r + 1) * ROUND):
            producer.produce(topic, key=f"k-{i}", value=f"v-{i}", on_delivery=cb)
            producer.poll(0)
        left = producer.flush(60)
        require(left == 0 and not errors, f"produce round {r}: {left} unacked, errors {errors[:5]}")
        require(len(acked) == (r + 1) * ROUND, f"produce round {r}: {len(acked)} acked")

    work = tempfile.mkdtemp(prefix="varve-groups-mixed-")
    java = Member("java", [os.path.join(HERE, "run_java.sh"), "mixed_member", topic, group,
                           strategy, os.path.join(work, "java.log"), str(SLEEP_MS)],
                  os.path.join(work, "java.log"))
    rdk = Member("librdkafka", [os.path.join(REPO, ".cache/venv-interop/bin/python"),
                                os.path.join(HERE, "member_rdkafka.py"), topic, group, strategy,
                                os.path.join(work, "rdk.log"), str(SLEEP_MS)],
                 os.path.join(work, "rdk.log"))
    franz = Member("franz-go", [os.path.join(REPO, ".cache/groups-franz-go-member"), topic,
                                group, strategy, os.path.join(work, "franz.log"), str(SLEEP_MS)],
                   os.path.join(work, "franz.log"))
    members = [java, rdk, franz]

    def processed_keys():
        return {k for m in members for (_, _, k) in m.recs()}

    def counts():
        return " ".join(f"{m.name}={len(m.recs())}" for m in members) + \
            f" distinct={len(processed_keys())}"

    try:
        # Round 1: three members.
        produce_round(0)
        snap, _ = wait_balanced(members, 90, "round 1 (3 members)")
        if strategy in ("range", "roundrobin"):
            require(all(len(s) == 2 for s in snap.values()),
                    f"round 1: {strategy} over 3 members x 6 partitions should give 2 each: {fmt(snap)}")
        desc = admin.describe_consumer_groups([group])[group].result(timeout=30)
        clients = sorted(m.client_id for m in desc.members)
        print(f"round 1: describe_consumer_groups state={desc.state} "
              f"assignor={desc.partition_assignor} members={clients}", flush=True)
        require(desc.partition_assignor == strategy,
                f"round 1: group protocol {desc.partition_assignor}, expected {strategy}")
        require(len(desc.members) == 3, f"round 1: described members {clients}")
        wait_for("round 1 consumed", 60, lambda: len(processed_keys()) >= ROUND, counts)
        print(f"round 1: {counts()}", flush=True)

        # Round 2: librdkafka leaves cleanly.
        t0 = time.monotonic()
        rdk.proc.send_signal(signal.SIGTERM)
        try:
            rdk.proc.wait(30)
        except subprocess.TimeoutExpired:
            raise Fail("librdkafka member did not close within 30s of SIGTERM")
        require("CLOSED" in rdk.lines(), f"librdkafka member exited without a clean close: "
                f"rc={rdk.proc.returncode} {rdk.stderr_tail()}")
        _, since = wait_balanced([java, franz], 30, "round 2 (librdkafka left)")
        took = since - t0
        print(f"round 2: rebalanced {took:.1f}s after the clean leave", flush=True)
        # A LeaveGroup rebalances at once, an ignored one only after the session timeout.
        require(took < SESSION_S * 0.75, f"round 2: the rebalance after librdkafka's clean close "
                f"took {took:.1f}s, as long as a session timeout: was its LeaveGroup ignored?")
        produce_round(1)
        wait_for("round 2 consumed", 60, lambda: len(processed_keys()) >= 2 * ROUND, counts)
        print(f"round 2: {counts()}", flush=True)

        # Round 3: Java is SIGKILLed while processing.
        before = len(java.recs())
        produce_round(2)
        wait_for("java processing round 3", 60, lambda: len(java.recs()) >= before + 100, counts)
        java.proc.kill()
        java.proc.wait(10)
        t_kill = time.monotonic()
        print(f"round 3: SIGKILLed the Java member after {len(java.recs()) - before} records "
              f"of this round", flush=True)
        limit = SESSION_S + 1 + 5
        wait_for("franz-go takes over all partitions", limit,
                 lambda: franz.owned() == frozenset(range(PARTITIONS)),
                 lambda: f"franz-go owns {sorted(franz.owned() or [])}")
        took = time.monotonic() - t_kill
        print(f"round 3: franz-go owns all {PARTITIONS} partitions {took:.1f}s after the kill "
              f"(session.timeout.ms={int(SESSION_S * 1000)})", flush=True)
        wait_for("round 3 consumed", 60, lambda: len(processed_keys()) >= 3 * ROUND, counts)
        franz.proc.send_signal(signal.SIGTERM)
        franz.proc.wait(30)
        require("CLOSED" in franz.lines(), f"franz-go member did not close cleanly: {franz.stderr_tail()}")

        # Every record at least once, at the offset it was acknowledged at.
        seen = {}
        wrong = []
        for m in members:
            for p, o, k in m.recs():
                seen[k] = seen.get(k, 0) + 1
                if acked.get(k) != (p, o):
                    wrong.append((m.name, p, o, k, acked.get(k)))
        lost = [k for k in acked if k not in seen]
        dups = sum(n - 1 for n in seen.values())
        print(f"produced={len(acked)} processed={sum(seen.values())} lost={len(lost)} "
              f"duplicated={dups} mismatches={len(wrong)} ({counts()})", flush=True)
        require(not lost, f"{len(lost)} records never processed, e.g. {lost[:10]}")
        require(not wrong, f"records at other positions than acknowledged: {wrong[:10]}")

        # Committed offsets = log end offsets (none skipped, nothing left).
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = admin.list_offsets({tp: OffsetSpec.latest() for tp in tps})
        end = {tp.partition: f.result(timeout=30).offset for tp, f in ends.items()}
        res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
        committed = {tp.partition: tp.offset
                     for tp in res[group].result(timeout=30).topic_partitions}
        print(f"log end offsets {dict(sorted(end.items()))} committed {dict(sorted(committed.items()))}")
        require(committed == end, f"committed offsets {committed} != log end offsets {end}")
        for m in members:
            errs = [l for l in m.lines() if l.startswith("COMMIT err")]
            if errs:
                print(f"{m.name}: {len(errs)} failed commits (rebalance), e.g. {errs[0]}")
        print(f"PASS groups_mixed_clients ({strategy})")
        return 0
    except Fail as e:
        print(f"FAIL groups_mixed_clients: {e}", file=sys.stderr, flush=True)
        for m in members:
            print(f"--- {m.name} stderr tail:\n{m.stderr_tail()}", file=sys.stderr)
        return 1
    finally:
        for m in members:
            if m.alive():
                m.proc.kill()
                m.proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
