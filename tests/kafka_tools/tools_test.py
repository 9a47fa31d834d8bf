#!/usr/bin/env python3
"""Kafka's own command-line tools and kcat, unchanged, against one broker.

Usage: tools_test.py topics|configs|console|kcat
The broker is at $VARVE_BOOTSTRAP (tests/lib/with_broker.sh sets it; any Kafka broker with
node id 0 works too, which is how these checks were validated against Apache Kafka 4.1).
Kafka's tools are the wrappers in bin/ (main classes from the Kafka 4.x jars that
install.sh fetches); kcat is Debian's.

Each check runs the command an operator would type and asserts on what it prints (tables,
messages, consumed records), not only on its exit status. Stdlib only. Every command is
bounded by a timeout; a failure raises with the command, its exit status and its output.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.join(HERE, "bin")
BOOT = os.environ["VARVE_BOOTSTRAP"]


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def run(argv, stdin=None, expect_rc=0, timeout=120):
    """Runs argv; returns (stdout, stderr). expect_rc=None accepts any status, 'nonzero' any
    failure status."""
    try:
        p = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise Fail(f"timed out after {timeout}s: {' '.join(argv)}\nstdout:\n{e.stdout}\nstderr:\n{e.stderr}")
    ok = (expect_rc is None or (expect_rc == "nonzero" and p.returncode != 0) or p.returncode == expect_rc)
    if not ok:
        raise Fail(f"`{' '.join(argv)}` exited {p.returncode} (expected {expect_rc})\n"
                   f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p.stdout, p.stderr


def tool(script, *args, **kw):
    """Runs one of Kafka's tools (bin/<script>) with --bootstrap-server added."""
    return run([os.path.join(BIN, script), "--bootstrap-server", BOOT, *args], **kw)


def wait_until(fn, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = fn()
        if ok:
            return last
        time.sleep(0.3)
    raise Fail(f"timed out after {timeout}s waiting for {what}; last seen:\n{last}")


def name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def table(text, first_col):
    """Parses the whitespace-aligned table whose header row starts with first_col (the
    format of kafka-consumer-groups.sh); returns (header, [row dict])."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        cols = line.split()
        if cols and cols[0] == first_col:
            rows = []
            for l in lines[i + 1:]:
                if not l.strip():
                    break
                cells = l.split()
                check(len(cells) == len(cols), f"row {cells} does not match header {cols} in:\n{text}")
                rows.append(dict(zip(cols, cells)))
            return cols, rows
    raise Fail(f"no table with header {first_col} in:\n{text}")


# --------------------------------------------------------------------------------------------
# kafka-topics.sh


def describe_topic(topic):
    """kafka-topics.sh --describe: (summary fields, configs dict, [partition fields])."""
    out, _ = tool("kafka-topics.sh", "--describe", "--topic", topic)
    summary, parts = None, []
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w+): ?([^\t]*)", line.strip()))
        if line.startswith("Topic:") and "PartitionCount" in fields:
            summary = fields
        elif line.startswith("\t") and "Partition" in fields:
            parts.append(fields)
    check(summary is not None, f"no topic summary line in --describe output:\n{out}")
    configs = {}
    if summary.get("Configs"):
        for kv in summary["Configs"].split(","):
            k, _, v = kv.partition("=")
            configs[k] = v
    return summary, configs, parts, out


def test_topics():
    topic = "important-topic"
    seed = ["--create", "--bootstrap-server", BOOT, "--topic", topic, "--partitions", "6",
            "--replication-factor", "3", "--config", "min.insync.replicas=2",
            "--config", "flush.messages=1", "--config", "retention.ms=1209600000"]
    # The seed article's line verbatim: one broker cannot hold 3 replicas; Kafka refuses.
    out, err = run([os.path.join(BIN, "kafka-topics.sh"), *seed], expect_rc="nonzero")
    check("InvalidReplicationFactorException" in out + err,
          f"RF 3 on one broker: expected InvalidReplicationFactorException, got:\n{out}{err}")
    listed, _ = tool("kafka-topics.sh", "--list")
    check(topic not in listed.split(), f"refused topic was created anyway:\n{listed}")
    print("seed line with RF 3 refused:", (out + err).strip().splitlines()[0])

    seed[seed.index("3")] = "1"
    out, _ = run([os.path.join(BIN, "kafka-topics.sh"), *seed])
    check(f"Created topic {topic}." in out, f"unexpected --create output:\n{out}")

    summary, configs, parts, text = describe_topic(topic)
    check(summary["Topic"] == topic and summary["PartitionCount"] == "6"
          and summary["ReplicationFactor"] == "1", f"describe summary wrong:\n{text}")
    for k, v in {"min.insync.replicas": "2", "flush.messages": "1", "retention.ms": "1209600000"}.items():
        check(configs.get(k) == v, f"describe should show {k}={v}; configs {configs}\n{text}")
    check(sorted(int(p["Partition"]) for p in parts) == list(range(6)), f"partitions not 0..5:\n{text}")
    for p in parts:
        check(p["Leader"] == "0" and p["Replicas"] == "0" and p["Isr"] == "0",
              f"partition {p['Partition']}: expected leader/replicas/isr 0, got {p}")
    print("describe: 6 partitions, leader 0, configs", {k: configs[k] for k in
                                                         ("min.insync.replicas", "flush.messages", "retention.ms")})

    other = name("other")
    tool("kafka-topics.sh", "--create", "--topic", other, "--partitions", "2", "--replication-factor", "1")
    listed, _ = tool("kafka-topics.sh", "--list")
    check(topic in listed.split() and other in listed.split(), f"--list misses a topic:\n{listed}")

    # Creating it again: TopicExistsException.
    out, err = tool("kafka-topics.sh", "--create", "--topic", topic, "--partitions", "6", expect_rc="nonzero")
    check("TopicExistsException" in out + err or "already exists" in out + err,
          f"duplicate create: expected TopicExistsException, got:\n{out}{err}")

    tool("kafka-topics.sh", "--alter", "--topic", topic, "--partitions", "8")
    summary, configs, parts, text = describe_topic(topic)
    check(summary["PartitionCount"] == "8" and sorted(int(p["Partition"]) for p in parts) == list(range(8)),
          f"after --alter --partitions 8:\n{text}")
    check(configs.get("min.insync.replicas") == "2", f"configs lost by --alter:\n{text}")
    # Kafka never shrinks a topic: InvalidPartitionsException.
    out, err = tool("kafka-topics.sh", "--alter", "--topic", topic, "--partitions", "4", expect_rc="nonzero")
    check("InvalidPartitionsException" in out + err, f"shrinking to 4 partitions: expected "
                                                     f"InvalidPartitionsException, got:\n{out}{err}")
    print("alter: 8 partitions; shrinking refused")

    out, _ = tool("kafka-topics.sh", "--delete", "--topic", topic)
    wait_until(lambda: (lambda l: (topic not in l.split(), l))(tool("kafka-topics.sh", "--list")[0]),
               f"{topic} to disappear from --list")
    out, err = tool("kafka-topics.sh", "--describe", "--topic", topic, expect_rc="nonzero")
    check("does not exist" in out + err, f"describe of deleted topic:\n{out}{err}")
    listed, _ = tool("kafka-topics.sh", "--list")
    check(other in listed.split(), f"--delete removed the wrong topic:\n{listed}")
    print("delete: gone from --list and --describe")


# --------------------------------------------------------------------------------------------
# kafka-configs.sh


def describe_configs(entity_type, entity, *extra):
    """kafka-configs.sh --describe: (header line, {name: (value, synonyms text)})."""
    out, _ = tool("kafka-configs.sh", "--describe", "--entity-type", entity_type, "--entity-name", entity, *extra)
    lines = out.splitlines()
    check(lines, f"empty kafka-configs --describe output for {entity_type} {entity}")
    entries = {}
    for line in lines[1:]:
        m = re.match(r"^  ([\w.]+)=(.*?) sensitive=(true|false) synonyms=\{(.*)\}$", line)
        check(m is not None, f"unparsable config line {line!r} in:\n{out}")
        entries[m.group(1)] = (m.group(2), m.group(4))
    return lines[0], entries, out


def test_configs():
    topic = name("cfg")
    tool("kafka-topics.sh", "--create", "--topic", topic, "--partitions", "1", "--replication-factor", "1",
         "--config", "segment.ms=3600000")
    header, entries, out = describe_configs("topics", topic)
    check(header == f"Dynamic configs for topic {topic} are:", f"header:\n{out}")
    check(set(entries) == {"segment.ms"} and entries["segment.ms"][0] == "3600000"
          and "DYNAMIC_TOPIC_CONFIG:segment.ms=3600000" in entries["segment.ms"][1],
          f"describe should show only the override segment.ms=3600000:\n{out}")

    out, _ = tool("kafka-configs.sh", "--alter", "--entity-type", "topics", "--entity-name", topic,
                  "--add-config", "retention.ms=86400000,cleanup.policy=compact,max.message.bytes=2000000")
    check(f"Completed updating config for topic {topic}." in out, f"--alter output:\n{out}")
    _, entries, out = describe_configs("topics", topic)
    want = {"segment.ms": "3600000", "retention.ms": "86400000", "cleanup.policy": "compact",
            "max.message.bytes": "2000000"}
    check({k: v[0] for k, v in entries.items()} == want, f"after --add-config expected {want}:\n{out}")
    check("DYNAMIC_TOPIC_CONFIG:cleanup.policy=compact" in entries["cleanup.policy"][1], out)

    out, _ = tool("kafka-configs.sh", "--alter", "--entity-type", "topics", "--entity-name", topic,
                  "--delete-config", "retention.ms,segment.ms")
    check(f"Completed updating config for topic {topic}." in out, f"--delete-config output:\n{out}")
    _, entries, out = describe_configs("topics", topic)
    want = {"cleanup.policy": "compact", "max.message.bytes": "2000000"}
    check({k: v[0] for k, v in entries.items()} == want, f"after --delete-config expected {want}:\n{out}")

    # --all: every topic config with its effective value; deleted overrides fall back.
    header, entries, out = describe_configs("topics", topic, "--all")
    check(header == f"All configs for topic {topic} are:", f"header:\n{out}")
    for k in ("retention.ms", "segment.ms", "cleanup.policy", "min.insync.replicas", "segment.bytes"):
        check(k in entries, f"--all misses {k}:\n{out}")
    check(entries["retention.ms"][0] == "604800000", f"retention.ms should fall back to 7 days:\n{out}")
    check(entries["cleanup.policy"][0] == "compact", out)
    check("DYNAMIC_TOPIC_CONFIG" not in entries["retention.ms"][1], f"deleted override still listed:\n{out}")

    # Kafka's validation errors reach the tool.
    o, e = tool("kafka-configs.sh", "--alter", "--entity-type", "topics", "--entity-name", topic,
                "--add-config", "retention.ms=abc", expect_rc="nonzero")
    check("InvalidConfigurationException" in o + e, f"retention.ms=abc: expected InvalidConfigurationException:\n{o}{e}")
    o, e = tool("kafka-configs.sh", "--alter", "--entity-type", "topics", "--entity-name", topic,
                "--add-config", "no.such.config=1", expect_rc="nonzero")
    check("InvalidConfigurationException" in o + e, f"unknown name: expected InvalidConfigurationException:\n{o}{e}")
    print("topic configs: describe / add-config / delete-config / --all / validation")

    header, entries, out = describe_configs("brokers", "0")
    check(header == "Dynamic configs for broker 0 are:", f"broker header:\n{out}")
    header, entries, out = describe_configs("brokers", "0", "--all")
    check(header == "All configs for broker 0 are:", f"broker --all header:\n{out}")
    check(entries.get("node.id", ("",))[0] == "0", f"node.id=0 missing:\n{out}")
    check(f"//{BOOT}" in entries.get("listeners", ("",))[0], f"listeners should name {BOOT}:\n{out}")
    for k in ("log.dirs", "num.partitions", "log.retention.hours", "min.insync.replicas", "log.segment.bytes"):
        check(k in entries, f"broker --all misses {k}:\n{out}")
    check("STATIC_BROKER_CONFIG:log.dirs=" in entries["log.dirs"][1], f"log.dirs source:\n{out}")
    print("broker 0 configs:", len(entries), "entries, node.id / listeners / log.dirs as configured")


# --------------------------------------------------------------------------------------------
# kafka-console-producer.sh / kafka-console-consumer.sh / kafka-consumer-groups.sh


def group_describe(group, *extra):
    out, _ = tool("kafka-consumer-groups.sh", "--describe", "--group", group, *extra)
    return out


def offsets_table(group, topic):
    out = group_describe(group)
    header, rows = table(out, "GROUP")
    for col in ("GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                "CONSUMER-ID", "HOST", "CLIENT-ID"):
        check(col in header, f"describe lacks column {col}:\n{out}")
    rows = [r for r in rows if r["TOPIC"] == topic]
    return {int(r["PARTITION"]): r for r in rows}, out


def test_console():
    topic, group, busy = name("console"), name("g1"), name("g2")
    tool("kafka-topics.sh", "--create", "--topic", topic, "--partitions", "3", "--replication-factor", "1")
    lines = [f"key-{i:03d}:value {i} / {uuid.uuid4().hex}" for i in range(100)]
    tool("kafka-console-producer.sh", "--topic", topic, "--property", "parse.key=true",
         "--property", "key.separator=:", stdin="\n".join(lines) + "\n")

    out, err = tool("kafka-console-consumer.sh", "--topic", topic, "--from-beginning", "--max-messages", "100",
                    "--property", "print.key=true", "--group", group, "--timeout-ms", "60000")
    got = [l.replace("\t", ":", 1) for l in out.splitlines()]  # print.key separates with a tab
    check("Processed a total of 100 messages" in err, f"consumer summary:\n{err}")
    check(sorted(got) == sorted(lines),
          f"consumed records differ: missing {sorted(set(lines) - set(got))[:5]} "
          f"unexpected {sorted(set(got) - set(lines))[:5]} (got {len(got)})")
    print("console: produced=100 consumed=100 mismatches=0")

    parts, out = offsets_table(group, topic)
    check(sorted(parts) == [0, 1, 2], f"describe should list partitions 0..2:\n{out}")
    check(sum(int(r["LOG-END-OFFSET"]) for r in parts.values()) == 100, f"log-end offsets must sum to 100:\n{out}")
    for r in parts.values():
        check(r["CURRENT-OFFSET"] == r["LOG-END-OFFSET"] and r["LAG"] == "0", f"lag should be 0:\n{out}")
    check("has no active members" in out or all(r["CONSUMER-ID"] == "-" for r in parts.values()),
          f"the console consumer has left; no member expected:\n{out}")

    out, _ = tool("kafka-consumer-groups.sh", "--group", group, "--reset-offsets", "--to-earliest",
                  "--topic", topic, "--dry-run")
    _, rows = table(out, "GROUP")
    check(sorted(int(r["PARTITION"]) for r in rows) == [0, 1, 2] and all(r["NEW-OFFSET"] == "0" for r in rows),
          f"dry-run plan:\n{out}")
    parts, out = offsets_table(group, topic)
    check(all(r["LAG"] == "0" for r in parts.values()), f"--dry-run must not move offsets:\n{out}")

    out, _ = tool("kafka-consumer-groups.sh", "--group", group, "--reset-offsets", "--to-earliest",
                  "--topic", topic, "--execute")
    _, rows = table(out, "GROUP")
    check(all(r["NEW-OFFSET"] == "0" for r in rows) and len(rows) == 3, f"--execute output:\n{out}")
    parts, out = offsets_table(group, topic)
    for r in parts.values():
        check(r["CURRENT-OFFSET"] == "0" and r["LAG"] == r["LOG-END-OFFSET"], f"after reset:\n{out}")
    check(sum(int(r["LAG"]) for r in parts.values()) == 100, f"total lag after reset should be 100:\n{out}")
    print("reset-offsets --to-earliest --execute: lag 100")

    # A group consumer (no --from-beginning) now re-reads everything from the reset offsets.
    out, err = tool("kafka-console-consumer.sh", "--topic", topic, "--max-messages", "100",
                    "--property", "print.key=true", "--group", group, "--timeout-ms", "60000")
    got = [l.replace("\t", ":", 1) for l in out.splitlines()]
    check(sorted(got) == sorted(lines), f"re-read after reset: got {len(got)} records, differing content")
    parts, out = offsets_table(group, topic)
    check(all(r["LAG"] == "0" for r in parts.values()), f"lag after re-read should be 0:\n{out}")

    # A live member shows up in describe (consumer id, host, client id) and blocks deletion.
    consumer = subprocess.Popen([os.path.join(BIN, "kafka-console-consumer.sh"), "--bootstrap-server", BOOT,
                                 "--topic", topic, "--group", busy, "--from-beginning"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def member_listed():
            if consumer.poll() is not None:
                raise Fail(f"console consumer exited {consumer.returncode}: {consumer.stderr.read()}")
            o, _ = tool("kafka-consumer-groups.sh", "--describe", "--group", busy, expect_rc=None)
            try:
                _, rows = table(o, "GROUP")
            except Fail:
                return False, o
            rows = [r for r in rows if r["TOPIC"] == topic]
            return (len(rows) == 3 and all(r["CONSUMER-ID"] != "-" and r["LAG"] == "0" for r in rows)), o
        out = wait_until(member_listed, f"group {busy} to show an active member with lag 0", timeout=60)
        _, rows = table(out, "GROUP")
        check(len({r["CONSUMER-ID"] for r in rows}) == 1 and rows[0]["HOST"].endswith("127.0.0.1")
              and rows[0]["CLIENT-ID"] != "-", f"member columns:\n{out}")
        out = group_describe(busy, "--state")
        _, st = table(out, "GROUP")
        check(st[0]["STATE"] == "Stable" and st[0]["#MEMBERS"] == "1" and st[0]["ASSIGNMENT-STRATEGY"] != "-",
              f"--state of the live group:\n{out}")
        o, e = tool("kafka-consumer-groups.sh", "--delete", "--group", busy, expect_rc=None)
        check("GroupNotEmptyException" in o + e or "not empty" in o + e,
              f"deleting a group with a live member: expected GroupNotEmptyException:\n{o}{e}")
        print("live member: described with consumer id/host/client id; --delete refused (not empty)")
    finally:
        consumer.send_signal(signal.SIGTERM)
        try:
            consumer.wait(30)
        except subprocess.TimeoutExpired:
            consumer.kill()
            consumer.wait()

    out, _ = tool("kafka-consumer-groups.sh", "--list")
    check(group in out.split() and busy in out.split(), f"--list should show {group} and {busy}:\n{out}")
    out, _ = tool("kafka-consumer-groups.sh", "--delete", "--group", group)
    check(f"Deletion of requested consumer groups ('{group}') was successful." in out, f"--delete:\n{out}")
    out, _ = tool("kafka-consumer-groups.sh", "--list")
    check(group not in out.split() and busy in out.split(), f"after --delete, --list:\n{out}")
    o, e = tool("kafka-consumer-groups.sh", "--describe", "--group", group, expect_rc=None)
    # Kafka 4.1 answers GROUP_ID_NOT_FOUND (DescribeGroups v6 / ConsumerGroupDescribe); older
    # brokers answer state Dead, which the tool prints as "does not exist". Both are right.
    check("does not exist" in o + e or "GroupIdNotFoundException" in o + e, f"describe of a deleted group:\n{o}{e}")
    print("groups: --list / --delete")


# --------------------------------------------------------------------------------------------
# kcat


def kcat(*args, **kw):
    return run(["kcat", "-b", BOOT, *args], **kw)


def test_kcat():
    topic, group = name("kcat"), name("kg")
    # -P auto-creates the topic with the broker's num.partitions (ctest passes 3).
    overrides = dict(kv.split("=", 1) for kv in os.environ.get("VARVE_OVERRIDES", "").split())
    nparts = int(overrides.get("num.partitions", "1"))
    parts_want = list(range(nparts))
    # 100 lines over 10 keys: a key always lands on the same partition, in production order.
    lines = [f"k{i % 10}:v{i:03d}-{uuid.uuid4().hex[:8]}" for i in range(100)]
    kcat("-P", "-t", topic, "-K:", stdin="\n".join(lines) + "\n")

    out, _ = kcat("-L")
    check(re.search(r"^ 1 brokers:$", out, re.M) and re.search(rf"^  broker 0 at {re.escape(BOOT)}", out, re.M),
          f"-L should list broker 0 at {BOOT}:\n{out}")
    check(re.search(rf'^  topic "{re.escape(topic)}" with {nparts} partitions:$', out, re.M),
          f"-L should list {topic} with {nparts} partitions (auto-created, num.partitions={nparts}):\n{out}")
    meta = json.loads(kcat("-L", "-J", "-t", topic)[0])
    check([b["id"] for b in meta["brokers"]] == [0], f"-J brokers: {meta['brokers']}")
    (t,) = meta["topics"]
    check(t["topic"] == topic and sorted(p["partition"] for p in t["partitions"]) == parts_want
          and all(p["leader"] == 0 and [r["id"] for r in p["isrs"]] == [0] for p in t["partitions"]),
          f"-L -J topic metadata: {t}")
    print(f"kcat -L: broker 0 and the topic's {nparts} partitions (leader 0, isr [0])")

    fmt = "%p|%o|%k|%s\\n"
    out, _ = kcat("-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", fmt, timeout=60)
    recs = [l.split("|", 3) for l in out.splitlines()]
    check(len(recs) == 100, f"-C -e read {len(recs)} records, expected 100")
    check(sorted(f"{k}:{v}" for _, _, k, v in recs) == sorted(lines), "-C content differs from what -P sent")
    key_part, by_part = {}, {}
    for p, o, k, v in recs:
        check(key_part.setdefault(k, p) == p, f"key {k} on partitions {key_part[k]} and {p}")
        by_part.setdefault(p, []).append((int(o), f"{k}:{v}"))
    for p, rs in by_part.items():
        check([o for o, _ in rs] == list(range(len(rs))), f"partition {p} offsets not 0..n-1: {[o for o, _ in rs]}")
        order = [lines.index(l) for _, l in rs]
        check(order == sorted(order), f"partition {p} is not in production order")
    print(f"kcat -P/-C: produced=100 consumed=100 mismatches=0 over partitions "
          f"{ {p: len(r) for p, r in sorted(by_part.items())} }")

    # Balanced consumer: the group starts at earliest (no committed offsets), reads all, commits.
    g = ["-G", group, "-X", "auto.offset.reset=earliest", "-e", "-q", "-f", fmt, topic]
    out, _ = kcat(*g, timeout=90)
    got = [l.split("|", 3) for l in out.splitlines()]
    check(sorted(f"{k}:{v}" for _, _, k, v in got) == sorted(lines),
          f"-G read {len(got)} records; content differs from -C")
    check(sorted((p, o) for p, o, _, _ in got) == sorted((p, o) for p, o, _, _ in recs),
          "-G partitions/offsets differ from -C")
    # The group committed its position: a second run has nothing left to read.
    out, _ = kcat(*g, timeout=90)
    check(out.strip() == "", f"second -G run should read nothing (committed offsets), got:\n{out[:500]}")
    if os.path.exists(os.path.join(BIN, "kafka-consumer-groups.sh")):
        parts, out = offsets_table(group, topic)
        check(sorted(parts) == parts_want and all(r["LAG"] == "0" for r in parts.values())
              and sum(int(r["CURRENT-OFFSET"]) for r in parts.values()) == 100,
              f"kcat group's committed offsets:\n{out}")
    print("kcat -G: consumed=100 mismatches=0; committed offsets at the end")


TESTS = {"topics": test_topics, "configs": test_configs, "console": test_console, "kcat": test_kcat}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in TESTS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(TESTS)}")
    t0 = time.monotonic()
    try:
        TESTS[sys.argv[1]]()
    except Fail as e:
        print(f"FAIL kafka_tools_{sys.argv[1]}: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"PASS kafka_tools_{sys.argv[1]} ({time.monotonic() - t0:.1f}s)")
