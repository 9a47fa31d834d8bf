"""interop_librdkafka_crash_flush: with log.flush.interval.messages=1 every acknowledged record
must survive a SIGKILL of the broker in the middle of a produce run.

A librdkafka producer (acks=all, one request in flight per connection so a retry cannot
reorder a partition) sends 20,000 records; once about a third are acknowledged the broker is
killed with SIGKILL and restarted on the same data. The producer keeps retrying. Afterwards
every record whose delivery report succeeded must be readable at the acknowledged
partition/offset with the same content, and acknowledged offsets must increase in production
order within each partition. Finally every segment file is CRC-scanned.
"""

import os
import threading
import time

from rdkafka_util import consume_all, create_topic, produce
from varve_interop import (make_records, restart_broker, scan_data_dir, unique_topic,
                           verify_roundtrip)

TOTAL = 20_000
KILL_AFTER_ACKS = 6_000


def test_acknowledged_records_survive_sigkill():
    overrides = os.environ.get("VARVE_OVERRIDES", "")
    print("VARVE_OVERRIDES=%r" % overrides, flush=True)
    assert "log.flush.interval.messages=1" in overrides, \
        "this test needs VARVE_OVERRIDES=log.flush.interval.messages=1 (set by CMakeLists.txt)"
    topic = unique_topic("rdk-crash")
    create_topic(topic, partitions=3)
    records = make_records(TOTAL, seed=77, topic_tag="crash",
                           base_timestamp_ms=int(time.time() * 1000) - 600_000)

    kill_state = {"thread": None, "result": None, "acked_at_kill": None, "produced_at_kill": None}

    def do_kill():
        try:
            kill_state["result"] = restart_broker(kill=True)
        except BaseException as e:  # reported by the main thread
            kill_state["result"] = e

    def on_progress(n, status):
        if kill_state["thread"] is None:
            acked_now = sum(1 for v in list(status.values()) if v[0] is None)
            if acked_now >= KILL_AFTER_ACKS:
                kill_state["acked_at_kill"] = acked_now
                kill_state["produced_at_kill"] = n
                kill_state["thread"] = threading.Thread(target=do_kill, daemon=True)
                kill_state["thread"].start()
        time.sleep(0.05)  # pace: ~5 s of produce() calls, so the kill lands mid-stream

    acked, failed = produce(topic, records, {
        "acks": "all",
        "enable.idempotence": False,
        "max.in.flight.requests.per.connection": 1,
        "compression.type": "lz4",
        "linger.ms": 5,
        "batch.num.messages": 200,
        "message.timeout.ms": 90000,
        "retry.backoff.ms": 200,
        "reconnect.backoff.max.ms": 1000,
        "log_level": 2,  # connection-refused noise while the broker restarts; errors are
                         # still collected through error_cb and summarised
    }, flush_timeout=150.0, on_progress=on_progress)

    assert kill_state["thread"] is not None, (
        "the broker was never killed: fewer than %d acknowledgements while producing"
        % KILL_AFTER_ACKS)
    kill_state["thread"].join(timeout=150)
    assert not isinstance(kill_state["result"], BaseException), \
        "restart after SIGKILL failed: %s" % kill_state["result"]
    print("killed broker after %d acks (%d produce() calls); restart: %s" % (
        kill_state["acked_at_kill"], kill_state["produced_at_kill"], kill_state["result"]),
        flush=True)
    print("produced=%d acknowledged=%d failed=%d" % (TOTAL, len(acked), len(failed)), flush=True)
    if failed:
        kinds = sorted(set(str(e) for _, e in failed))
        print("delivery failures (not acknowledged, may or may not be stored): %s" % kinds[:5],
              flush=True)

    # Acknowledged offsets increase in production order within each partition.
    order_problems = []
    for p in range(3):
        offs = [r["offset"] for r in acked if r["partition"] == p]
        for a, b in zip(offs, offs[1:]):
            if b <= a:
                order_problems.append("partition %d: offset %d acknowledged after %d" % (p, b, a))
    assert not order_problems, "acknowledgement order broken: %s" % order_problems[:10]

    consumed = consume_all(topic, partitions=3, timeout=120.0)
    by_pos = {(r["partition"], r["offset"]): r for r in consumed}
    lost, corrupt = [], []
    for rec in acked:
        got = by_pos.get((rec["partition"], rec["offset"]))
        if got is None:
            lost.append(rec)
        elif (got["key"], got["value"], got["headers"], got["timestamp"]) != \
                (rec["key"], rec["value"], rec["headers"], rec["timestamp"]):
            corrupt.append((rec, got))
    # Records stored more than once (a retry after the kill re-sent a batch that had been
    # written): allowed without idempotence, counted for the report.
    seen = {}
    for r in consumed:
        seen[r["key"]] = seen.get(r["key"], 0) + 1
    duplicates = sum(c - 1 for c in seen.values() if c > 1)
    for p in range(3):
        offs = sorted(r["offset"] for r in consumed if r["partition"] == p)
        assert offs == list(range(len(offs))), \
            "partition %d: consumed offsets not contiguous from 0" % p
    print("acked=%d lost=%d corrupt=%d consumed=%d duplicates=%d" % (
        len(acked), len(lost), len(corrupt), len(consumed), duplicates), flush=True)
    assert not lost and not corrupt, (
        "%d acknowledged records lost, %d differ; first lost: %s; first differing: %s" % (
            len(lost), len(corrupt),
            [(r["partition"], r["offset"], r["key"]) for r in lost[:10]],
            [(a["partition"], a["offset"], a["key"], b["key"]) for a, b in corrupt[:5]]))

    data_dir = os.environ["VARVE_DATA_DIR"]
    files, batches, nrecords, problems, skipped = scan_data_dir(data_dir)
    print("crc scan: files=%d batches=%d records=%d problems=%d (other .log files skipped: %d)"
          % (files, batches, nrecords, len(problems), len(skipped)), flush=True)
    assert files > 0, "no segment files (*.log named by base offset) under %s" % data_dir
    assert not problems, "segment scan found problems:\n  " + "\n  ".join(problems[:20])
