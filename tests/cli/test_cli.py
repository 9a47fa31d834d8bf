"""End-to-end tests of the `varve` operator CLI against one broker (see run.sh).

Each test runs real commands and checks both the human table (header columns, cell values)
and the --output json fields. Independent observers (confluent_kafka) confirm what the
commands claim where it matters: produced records, committed group offsets.
"""
import json
import os
import re
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

BIN = os.environ["VARVE_BIN"]
BOOT = os.environ["VARVE_BOOTSTRAP"]


def varve(*args, stdin=None, check=True, timeout=120):
    """Runs `varve ARGS --bootstrap-server BOOT`; returns the CompletedProcess."""
    p = subprocess.run([BIN, *args, "--bootstrap-server", BOOT], input=stdin, capture_output=True,
                       text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"varve {' '.join(args)} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def varve_json(*args, **kw):
    return json.loads(varve(*args, "--output", "json", **kw).stdout)


def table(text):
    """Parses a table printed by the CLI: a list of dicts keyed by the header row."""
    lines = [l for l in text.splitlines() if l.strip()]
    for i, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z-]*(\s{2,}[A-Z][A-Z-]*)+\s*$", line):
            header = line.split()
            rows = [l.split() for l in lines[i + 1:]]
            for r in rows:
                assert len(r) == len(header), f"row {r} does not match header {header}"
            return header, [dict(zip(header, r)) for r in rows]
    raise AssertionError(f"no table in:\n{text}")


def name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def committed(group, topic, partitions):
    c = Consumer({"bootstrap.servers": BOOT, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in partitions], timeout=30)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def test_cluster_info_and_brokers():
    out = varve("cluster", "info").stdout
    assert re.search(r"^CLUSTER-ID: \S+$", out, re.M), out
    assert re.search(r"^CONTROLLER: 0$", out, re.M), out
    header, rows = table(out)
    assert header == ["ID", "HOST", "PORT", "RACK", "CONTROLLER"]
    host, port = BOOT.rsplit(":", 1)
    assert rows == [{"ID": "0", "HOST": host, "PORT": port, "RACK": "-", "CONTROLLER": "yes"}]
    j = varve_json("cluster", "info")
    assert j["controller_id"] == 0 and j["cluster_id"]
    assert j["brokers"] == [{"id": 0, "host": host, "port": int(port), "rack": None, "controller": True}]
    assert varve_json("cluster", "brokers") == j["brokers"]


def test_topic_lifecycle():
    t = name("topic")
    out = varve("topic", "create", t, "--partitions", "3", "--replication-factor", "1",
                "--config", "retention.ms=123456", "--config", "min.insync.replicas=1").stdout
    assert out.strip() == f"Created topic {t}."
    again = varve("topic", "create", t, check=False)
    assert again.returncode == 1 and "TOPIC_ALREADY_EXISTS" in again.stderr
    assert varve("topic", "create", t, "--if-not-exists").returncode == 0

    header, rows = table(varve("topic", "list").stdout)
    assert header == ["NAME", "PARTITIONS", "REPLICAS", "INTERNAL"]
    assert {"NAME": t, "PARTITIONS": "3", "REPLICAS": "1", "INTERNAL": "no"} in rows
    assert {"name": t, "partitions": 3, "replication_factor": 1, "internal": False} in varve_json("topic", "list")

    out = varve("topic", "describe", t).stdout
    assert f"Topic: {t}\t" in out and "PartitionCount: 3" in out and "ReplicationFactor: 1" in out
    assert "Configs: min.insync.replicas=1,retention.ms=123456" in out
    header, rows = table(out)
    assert header == ["PARTITION", "LEADER", "LEADER-EPOCH", "REPLICAS", "ISR", "OFFLINE"]
    assert [r["PARTITION"] for r in rows] == ["0", "1", "2"]
    assert all(r["LEADER"] == "0" and r["REPLICAS"] == "0" and r["ISR"] == "0" for r in rows)
    j = varve_json("topic", "describe", t)
    assert j["name"] == t and j["partition_count"] == 3 and j["replication_factor"] == 1
    assert j["configs"] == {"retention.ms": "123456", "min.insync.replicas": "1"}
    assert [p["partition"] for p in j["partitions"]] == [0, 1, 2]
    assert all(p["leader"] == 0 and p["replicas"] == [0] and p["isr"] == [0] for p in j["partitions"])
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", j["topic_id"])

    out = varve("topic", "alter-config", t, "--set", "flush.messages=7", "--delete", "retention.ms").stdout
    assert out.strip() == f"Completed updating config for topic {t}."
    assert varve_json("topic", "describe", t)["configs"] == {"flush.messages": "7", "min.insync.replicas": "1"}
    bad = varve("topic", "alter-config", t, "--set", "retention.ms=soon", check=False)
    assert bad.returncode == 1 and "INVALID_CONFIG" in bad.stderr

    assert varve("topic", "add-partitions", t, "--total", "5").stdout.strip() == f"Topic {t} now has 5 partitions."
    assert varve_json("topic", "describe", t)["partition_count"] == 5
    shrink = varve("topic", "add-partitions", t, "--total", "2", check=False)
    assert shrink.returncode == 1 and "INVALID_PARTITIONS" in shrink.stderr

    assert varve("topic", "delete", t).stdout.strip() == f"Deleted topic {t}."
    assert t not in [x["name"] for x in varve_json("topic", "list")]
    gone = varve("topic", "describe", t, check=False)
    assert gone.returncode == 1 and "UNKNOWN_TOPIC_OR_PARTITION" in gone.stderr


def test_usage_errors_exit_2():
    p = varve("topic", "create", "x", "--partitons", "3", check=False)
    assert p.returncode == 2 and "unknown option --partitons" in p.stderr
    p = varve("group", "reset-offsets", "g", "--topic", "t", check=False)
    assert p.returncode == 2
    p = subprocess.run([BIN, "nonsense"], capture_output=True, text=True)
    assert p.returncode == 2


def test_unreachable_broker_is_a_clear_error():
    p = subprocess.run([BIN, "topic", "list", "--bootstrap-server", "127.0.0.1:1"], capture_output=True, text=True)
    assert p.returncode == 1 and "cannot connect to 127.0.0.1:1" in p.stderr


def test_config_describe_and_alter():
    t = name("cfg")
    varve("topic", "create", t, "--partitions", "1")
    header, rows = table(varve("config", "describe", "--topic", t).stdout)
    assert header == ["NAME", "VALUE", "SOURCE", "READ-ONLY", "SENSITIVE"]
    by_name = {r["NAME"]: r for r in rows}
    assert by_name["cleanup.policy"]["VALUE"] == "delete"
    assert by_name["cleanup.policy"]["SOURCE"] == "DEFAULT_CONFIG"
    varve("config", "alter", "--topic", t, "--set", "cleanup.policy=compact", "--set", "segment.ms=600000")
    j = varve_json("config", "describe", "--topic", t)
    assert j["resource_type"] == "topic" and j["resource_name"] == t
    cfg = {c["name"]: c for c in j["configs"]}
    assert cfg["cleanup.policy"]["value"] == "compact" and cfg["cleanup.policy"]["source"] == "DYNAMIC_TOPIC_CONFIG"
    assert cfg["segment.ms"]["value"] == "600000"
    varve("config", "alter", "--topic", t, "--delete", "cleanup.policy")
    cfg = {c["name"]: c for c in varve_json("config", "describe", "--topic", t)["configs"]}
    assert cfg["cleanup.policy"]["value"] == "delete" and cfg["cleanup.policy"]["source"] == "DEFAULT_CONFIG"

    j = varve_json("config", "describe", "--broker", "0")
    assert j["resource_type"] == "broker"
    cfg = {c["name"]: c for c in j["configs"]}
    assert cfg["listeners"]["value"] == f"PLAINTEXT://{BOOT}"
    assert cfg["listeners"]["source"] == "STATIC_BROKER_CONFIG"
    # The broker's answer (supported or not) is reported as is: success or a named Kafka error.
    p = varve("config", "alter", "--broker", "0", "--set", "log.retention.ms=1234", check=False)
    assert p.returncode == 0 or re.search(r"[A-Z_]+ \(\d+\)", p.stderr), p.stderr


def test_produce_and_consume_keys_headers_partitions_formats():
    t = name("data")
    varve("topic", "create", t, "--partitions", "2")
    p = varve("produce", t, "--key-separator", ":", "--header", "h1=a", "--header", "h2=b", "--partition", "1",
              "--acks", "all", stdin="k1:v1\nk2:v2\nnokey\n")
    assert "Produced 3 of 3 records" in p.stderr
    j = varve_json("produce", t, "--partition", "0", "--idempotent", "--compression", "zstd", stdin="x\ny\n")
    assert j["delivered"] == 2 and j["failed"] == 0 and j["last_offsets"] == {"0": 1}
    for acks in ("1", "0"):
        assert varve_json("produce", t, "--partition", "0", "--acks", acks, "--compression", "lz4",
                          stdin=f"acks{acks}\n")["sent"] == 1

    out = varve("consume", t, "--partition", "1", "--from-beginning", "--max-messages", "3",
                "--format", "%p|%o|%k|%v|%h").stdout
    assert out.splitlines() == ["1|0|k1|v1|h1=a,h2=b", "1|1|k2|v2|h1=a,h2=b", "1|2||nokey|h1=a,h2=b"]
    msgs = [json.loads(l) for l in varve("consume", t, "--partition", "1", "--offset", "1", "--max-messages", "2",
                                         "--output", "json").stdout.splitlines()]
    assert [(m["offset"], m["key"], m["value"]) for m in msgs] == [(1, "k2", "v2"), (2, None, "nokey")]
    assert msgs[0]["headers"] == {"h1": "a", "h2": "b"} and msgs[0]["topic"] == t and msgs[0]["partition"] == 1
    # acks=0 gives no delivery guarantee, so the partition holds 3 or 4 records.
    out = varve("consume", t, "--partition", "0", "--from-beginning", "--idle-timeout-ms", "3000",
                "--isolation-level", "read_committed").stdout
    assert out.splitlines()[:3] == ["x", "y", "acks1"]
    missing = varve("consume", name("missing"), "--idle-timeout-ms", "3000", check=False)
    assert missing.returncode == 1 and "UNKNOWN_TOPIC" in missing.stderr


def test_transactional_produce_reports_the_broker_error_honestly():
    t = name("txn")
    varve("topic", "create", t, "--partitions", "1")
    p = varve("produce", t, "--transactional-id", "tx-1", "--timeout-ms", "5000", stdin="a\n", check=False)
    if p.returncode == 0:  # the broker supports transactions: the record must be there
        assert varve("consume", t, "--from-beginning", "--max-messages", "1",
                     "--isolation-level", "read_committed").stdout == "a\n"
    else:
        assert p.returncode == 1 and "transactional id 'tx-1'" in p.stderr


def test_group_describe_reset_offsets_and_delete():
    t, g = name("grp"), name("group")
    varve("topic", "create", t, "--partitions", "2")
    varve("produce", t, "--partition", "0", stdin="".join(f"a{i}\n" for i in range(6)))
    varve("produce", t, "--partition", "1", stdin="".join(f"b{i}\n" for i in range(4)))
    # The group consumes 7 of 10 records and commits them.
    out = varve("consume", t, "--group", g, "--from-beginning", "--max-messages", "10", "--idle-timeout-ms", "15000")
    assert len(out.stdout.splitlines()) == 10
    before = committed(g, t, [0, 1])
    assert before == {0: 6, 1: 4}

    header, rows = table(varve("group", "list").stdout)
    assert header == ["GROUP", "STATE", "PROTOCOL-TYPE"]
    assert {"GROUP": g, "STATE": "Empty", "PROTOCOL-TYPE": "consumer"} in rows
    assert {"group": g, "state": "Empty", "protocol_type": "consumer"} in varve_json("group", "list")

    # Produce more: lag appears.
    varve("produce", t, "--partition", "0", stdin="a6\na7\n")
    out = varve("group", "describe", g).stdout
    assert f"Consumer group '{g}' has no active members." in out
    header, rows = table(out)
    assert header == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID",
                      "HOST", "CLIENT-ID"]
    assert rows == [
        {"GROUP": g, "TOPIC": t, "PARTITION": "0", "CURRENT-OFFSET": "6", "LOG-END-OFFSET": "8", "LAG": "2",
         "CONSUMER-ID": "-", "HOST": "-", "CLIENT-ID": "-"},
        {"GROUP": g, "TOPIC": t, "PARTITION": "1", "CURRENT-OFFSET": "4", "LOG-END-OFFSET": "4", "LAG": "0",
         "CONSUMER-ID": "-", "HOST": "-", "CLIENT-ID": "-"},
    ]

    # Dry run: prints the plan, changes nothing.
    out = varve("group", "reset-offsets", g, "--topic", t, "--to-earliest").stdout
    assert out.startswith("Dry run")
    header, rows = table(out)
    assert header == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"]
    assert [(r["PARTITION"], r["CURRENT-OFFSET"], r["NEW-OFFSET"]) for r in rows] == [("0", "6", "0"), ("1", "4", "0")]
    assert committed(g, t, [0, 1]) == {0: 6, 1: 4}

    # --execute moves the committed offsets.
    j = varve_json("group", "reset-offsets", g, "--topic", t, "--to-earliest", "--execute")
    assert j["executed"] is True
    assert [(p["partition"], p["new_offset"]) for p in j["partitions"]] == [(0, 0), (1, 0)]
    assert committed(g, t, [0, 1]) == {0: 0, 1: 0}
    varve("group", "reset-offsets", g, "--topic", f"{t}:0", "--shift-by", "3", "--execute")
    assert committed(g, t, [0, 1]) == {0: 3, 1: 0}
    varve("group", "reset-offsets", g, "--topic", t, "--shift-by", "-10", "--execute")  # clamped at earliest
    assert committed(g, t, [0, 1]) == {0: 0, 1: 0}
    varve("group", "reset-offsets", g, "--topic", t, "--to-latest", "--execute")
    assert committed(g, t, [0, 1]) == {0: 8, 1: 4}
    varve("group", "reset-offsets", g, "--topic", t, "--to-datetime", "2000-01-01T00:00:00Z", "--execute")
    assert committed(g, t, [0, 1]) == {0: 0, 1: 0}
    varve("group", "reset-offsets", g, "--topic", t, "--to-datetime", "2999-01-01T00:00:00Z", "--execute")
    assert committed(g, t, [0, 1]) == {0: 8, 1: 4}

    # An active member: describe shows it; --execute is refused.
    c = Consumer({"bootstrap.servers": BOOT, "group.id": g, "client.id": "cli-test-member",
                  "enable.auto.commit": False, "session.timeout.ms": 10000})
    c.subscribe([t])
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not c.assignment():
            c.poll(0.2)
        assert len(c.assignment()) == 2
        j = varve_json("group", "describe", g)
        assert j["state"] == "Stable" and len(j["members"]) == 1
        m = j["members"][0]
        assert m["client_id"] == "cli-test-member"
        assert sorted((a["topic"], p) for a in m["assignment"] for p in a["partitions"]) == [(t, 0), (t, 1)]
        assert {p["partition"]: (p["consumer_id"], p["client_id"]) for p in j["partitions"]} == {
            0: (m["consumer_id"], "cli-test-member"), 1: (m["consumer_id"], "cli-test-member")}
        header, rows = table(varve("group", "describe", g).stdout)
        assert all(r["CONSUMER-ID"] == m["consumer_id"] and r["CLIENT-ID"] == "cli-test-member" for r in rows)
        p = varve("group", "reset-offsets", g, "--topic", t, "--to-earliest", "--execute", check=False)
        assert p.returncode == 1 and "Stable" in p.stderr
        assert committed(g, t, [0, 1]) == {0: 8, 1: 4}
    finally:
        c.close()

    assert varve("group", "delete", g).stdout.strip() == f"Deleted consumer group '{g}'."
    assert g not in [x["group"] for x in varve_json("group", "list")]


def test_perf_produce_and_consume():
    t = name("perf")
    varve("topic", "create", t, "--partitions", "2")
    out = varve("perf", "produce", "--topic", t, "--num-records", "5000", "--record-size", "200",
                "--acks", "1", "--throughput", "-1").stdout
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"5000 records sent, [\d.]+ records/sec \([\d.]+ MB/sec\), [\d.]+ ms avg latency, "
                        r"[\d.]+ ms max latency, \d+ ms 50th, \d+ ms 95th, \d+ ms 99th, \d+ ms 99\.9th\.", last), last
    j = varve_json("perf", "produce", "--topic", t, "--num-records", "1000", "--record-size", "10")
    assert j["records_sent"] == 1000 and j["failed"] == 0 and j["p50_ms"] <= j["p99_ms"]
    out = varve("perf", "consume", "--topic", t, "--messages", "6000").stdout.splitlines()
    assert out[0] == ("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
                      "rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec")
    fields = out[1].split(", ")
    assert len(fields) == 10 and fields[4] == "6000"
    assert abs(float(fields[2]) - (5000 * 200 + 1000 * 10) / 1048576) < 0.001
