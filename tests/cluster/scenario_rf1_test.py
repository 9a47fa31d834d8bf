#!/usr/bin/env python3
"""Seed scenario (issue #4): with replication factor 1 a partition lives on one broker's disk
only; while that broker is down the partition is offline, and when its disk is lost every
record on it is gone.

A 3-partition topic with replication factor 1 (one partition per broker). Broker V (not the
controller) hosts partition p; the others host the rest.
1. N records per partition with acks=all: all acknowledged.
2. SIGKILL V. Kafka's semantics, asserted:
   - Metadata shows p without a leader (leader -1; partition error LEADER_NOT_AVAILABLE);
   - producing to p fails (no record acknowledged) and p cannot be read;
   - the other partitions are unaffected: writable, and every record still readable.
3. Delete V's data directory (the disk is lost) and restart V: p comes back led by V with an
   empty log — all N acknowledged records of p are lost (counted) — and takes writes again
   from offset 0; the other partitions lost nothing.
Prints `partition p: acknowledged=N lost=N ...` and the same for the others.
"""

import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import scenario_util as su  # noqa: E402
from confluent_kafka import KafkaError  # noqa: E402
from scenario_util import require  # noqa: E402

TOPIC = "scen-rf1"
N = 2000
DOWN_WRITES = 100


def body(c):
    ctl, (victim,) = su.pick_non_controller(c, 1)
    parts = su.create_topic(c, TOPIC, 3, 1)
    p = su.pick_partition(c, TOPIC, parts, lambda l, r: r == [victim], f"replicas [{victim}]")
    others = [q for q in sorted(parts) if q != p]
    require(all(parts[q][1] != [victim] for q in others),
            f"expected one partition per broker, got {parts}")
    su.log(f"controller {ctl}, victim {victim} hosts {TOPIC}-{p}; others {others}")

    acked = {}
    for q in sorted(parts):
        acked[q] = su.produce(c.bootstrap(), TOPIC, q, "pre", 0, N, "all")
        require(len(acked[q].acked) == N, f"{TOPIC}-{q}: acks=all with its broker up: {acked[q]}")

    c.kill(victim)
    state = su.wait_offline(c, TOPIC, p, 30)
    su.log(f"{TOPIC}-{p} with broker {victim} down: (leader, replicas, isr, error) {state}")
    failures = []
    if state[3] != KafkaError.LEADER_NOT_AVAILABLE:
        failures.append(f"Metadata for offline {TOPIC}-{p} answered error "
                        f"{KafkaError(state[3]).name() if state[3] is not None else 'NONE'}, "
                        f"expected LEADER_NOT_AVAILABLE")
    down = su.produce(c.healthy_bootstrap(), TOPIC, p, "down", 0, DOWN_WRITES, "1",
                      message_timeout_ms=5000, timeout=30)
    su.log(f"produce to offline {TOPIC}-{p}: {down}")
    require(not down.acked, f"{len(down.acked)} records acknowledged by offline {TOPIC}-{p}")
    try:
        r = su.read_partition(c.healthy_bootstrap(), TOPIC, p, timeout=10)
        failures.append(f"offline {TOPIC}-{p} could be read ({len(r.records)} records, high "
                        f"watermark {r.high}) with its only replica down")
    except su.ScenarioFailure as e:
        su.log(f"reading offline {TOPIC}-{p} fails as expected: {e}")
    for q in others:
        more = su.produce(c.healthy_bootstrap(), TOPIC, q, "pre", N, DOWN_WRITES, "all")
        require(len(more.acked) == DOWN_WRITES,
                f"{TOPIC}-{q} (broker {parts[q][0]} up) while {victim} is down: {more}")
        acked[q].acked.update(more.acked)

    b = c.brokers[victim]
    shutil.rmtree(b.data)
    os.makedirs(b.data)
    if su.reference_mode(c):
        c._kafka_format(b.config_path)  # a KRaft broker starts only on a formatted log dir
    su.log(f"broker {victim}: data directory {b.data} deleted")
    c.restart(victim)
    if su.reference_mode(c):
        # Kafka 4 (KRaft) notices the new log directory id and keeps the replica offline
        # (KIP-858) instead of serving an empty log as ZooKeeper-era Kafka, which Varve
        # follows, does: the records are gone either way.
        time.sleep(15)
        st = su.partition_state(c, TOPIC, p)
        if st[0] < 0:
            su.report("rf1 (reference mode)", acknowledged=N, lost=N,
                      note=f"{TOPIC}-{p}_stays_offline_after_the_disk_loss_{st}")
            parts = {q: parts[q] for q in others}
    if p in parts:
        su.wait_leader(c, TOPIC, p, 60, want=victim)

    lost_total = 0
    for q in sorted(parts):
        r = su.read_partition(c.bootstrap(), TOPIC, q)
        lost, dup = su.tally(acked[q], r, "pre")
        bad = r.mismatches()
        lost_total += len(lost)
        su.report(f"partition {q} (broker {parts[q][0]}{', disk lost' if q == p else ''})",
                  acknowledged=len(acked[q].acked), lost=len(lost), duplicated=dup,
                  mismatches=len(bad), log_start=r.low, log_end=r.high)
        if dup or bad:
            failures.append(f"{TOPIC}-{q}: duplicates {dup}, mismatches {bad[:3]}")
        if q == p and (len(lost) != N or r.high != 0):
            failures.append(f"{TOPIC}-{p}: after its only replica's disk was deleted, {N - len(lost)} "
                            f"of {N} records are still readable (log end {r.high}); they cannot "
                            f"exist anywhere")
        if q != p and lost:
            failures.append(f"{TOPIC}-{q} lost {len(lost)} records though its broker never failed")
    if p not in parts:  # reference mode, offline for good: checked above
        if failures:
            raise su.ScenarioFailure("; ".join(failures))
        return
    again = su.produce(c.bootstrap(), TOPIC, p, "after", 0, 10, "all")
    offs = sorted(again.acked.values())
    su.report("rf1", acknowledged=sum(len(a.acked) for a in acked.values()), lost=lost_total,
              expected_lost=N, writes_after_restart=len(again.acked),
              first_offset_after_restart=offs[0] if offs else None)
    if offs != list(range(10)):
        failures.append(f"{TOPIC}-{p} after the restart: acknowledged offsets {offs} "
                        f"(errors {again.error_names()}), expected 0..9 in a fresh log")
    if failures:
        raise su.ScenarioFailure("; ".join(failures))


if __name__ == "__main__":
    sys.exit(su.run_scenario("scenario_rf1", body))
