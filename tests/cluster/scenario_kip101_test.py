#!/usr/bin/env python3
"""Seed scenario (issue #4), KIP-101: a follower restarts, the leader dies, the follower
becomes leader — no committed record is lost (no truncation to a stale high watermark), and
the divergent old leader converges through leader-epoch truncation (OffsetForLeaderEpoch).

A topic with replication factor 2, min.insync.replicas=1, unclean election disabled; the test
uses the partition whose replicas are [L, F], two brokers that are not the controller.
1. C1 records with acks=all: committed on L and F.
2. F restarts: SIGKILL and, once its ZooKeeper session has expired (before that a broker
   cannot register its node.id again, as in Kafka), start again on the same data (its
   high-watermark checkpoint is older than its log end); wait until it is back in the ISR.
3. Divergence: F's fetches from L are cut (the harness proxy black-holes F's connections to
   L); D records with acks=1 are acknowledged by L alone; within replica.lag.time.max.ms
   (so F is still in the ISR) L is SIGKILLed, and F's connections are let through again.
4. F must be elected (it is in the ISR) and must still have every C1 record. C3 records with
   acks=all go to F: they take the offsets where L's log has the D records, in a newer epoch.
5. L restarts: it must truncate D (its epoch ended where F's began) and fetch C3; wait for
   ISR [L, F].
6. Every replica serves as leader once and is read completely: read with F leading; SIGKILL
   F so L (in the ISR) leads; read again; restart F.
Kafka's semantics, asserted: every C1 and C3 record is in both reads at its acknowledged
offset, exactly once; both reads are identical (key, value, header, timestamp per offset);
the D records (acks=1, acknowledged by the leader alone) are gone — lost, and counted.
Prints `kip101: acknowledged=N lost=L duplicated=D ...`.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import scenario_util as su  # noqa: E402
from scenario_util import require  # noqa: E402

TOPIC = "scen-kip101"
C1 = 3000
D = 500
C3 = 1000
LAG_MAX_S = 5.0


def body(c):
    ctl = su.controller_id(c)
    pair = set(su.pick_non_controller(c, 2)[1])
    parts = su.create_topic(c, TOPIC, 3, 2, {"min.insync.replicas": "1"})
    p = su.pick_partition(c, TOPIC, parts, lambda l, r: set(r) == pair, f"replicas {sorted(pair)}")
    leader, follower = parts[p][0], [r for r in parts[p][1] if r != parts[p][0]][0]
    su.log(f"controller {ctl}; {TOPIC}-{p}: leader L={leader}, follower F={follower}")
    isr = [leader, follower]

    c1 = su.produce(c.bootstrap(), TOPIC, p, "c1", 0, C1, "all")
    require(len(c1.acked) == C1, f"C1 acks=all with both replicas up: {c1}")

    # 2. The follower restarts (killed right after the writes: its HW checkpoint lags its
    # log). Like Kafka's, a broker starts again only once its old ZooKeeper session is gone.
    c.kill(follower)
    su.wait_broker_gone(c, follower)
    c.restart(follower)
    t0 = time.monotonic()
    su.wait_isr(c, TOPIC, p, isr, 60)
    su.log(f"F={follower} back in the ISR {time.monotonic() - t0:.1f}s after its restart")

    # 3. L writes records F cannot fetch, then dies while F is still in the ISR.
    lproxy = c.brokers[leader].proxy
    lproxy.block(sources={follower})
    t_cut = time.monotonic()
    d = su.produce(f"127.0.0.1:{c.brokers[leader].proxy_port}", TOPIC, p, "d", C1, D, "1",
                   timeout=3)
    elapsed = time.monotonic() - t_cut
    require(elapsed < LAG_MAX_S - 1.5,
            f"setup too slow: {elapsed:.1f}s since F was cut off (must stay under "
            f"replica.lag.time.max.ms so F is still in the ISR when L dies)")
    c.kill(leader)
    lproxy.unblock(sources={follower})
    require(len(d.acked) == D, f"D acks=1 with L up: {d}")
    su.log(f"L={leader} killed {elapsed:.1f}s after F was cut off; D {d}")

    # 4. F leads with every committed record; new committed records at D's offsets.
    su.wait_leader(c, TOPIC, p, 60, want=follower)
    c3 = su.produce(c.healthy_bootstrap(), TOPIC, p, "c3", C1 + D, C3, "all")
    require(len(c3.acked) == C3, f"C3 acks=all with F leading: {c3}")
    d_offsets = set(d.acked.values())
    overlap = len(d_offsets & set(c3.acked.values()))
    su.log(f"C3 acknowledged at offsets {min(c3.acked.values())}..{max(c3.acked.values())}; "
           f"{overlap} of them are offsets where L's log held D records")

    # 5. L returns and must converge.
    c.restart(leader)
    su.wait_isr(c, TOPIC, p, isr, 60)

    # 6. Each replica leads once and is read completely.
    reads = {}
    su.wait_leader(c, TOPIC, p, 30, want=follower)
    reads[follower] = su.read_partition(c.bootstrap(), TOPIC, p)
    c.kill(follower)
    su.wait_leader(c, TOPIC, p, 60, want=leader)
    reads[leader] = su.read_partition(c.healthy_bootstrap(), TOPIC, p)
    su.wait_broker_gone(c, follower)
    c.restart(follower)
    su.wait_isr(c, TOPIC, p, isr, 60)

    failures = []
    totals = {"lost": 0, "duplicated": 0}
    for who, r in reads.items():
        l1, d1 = su.tally(c1, r, "c1")
        l3, d3 = su.tally(c3, r, "c3")
        ld, dd = su.tally(d, r, "d")
        bad = r.mismatches()
        role = "F (restarted follower)" if who == follower else "L (old leader)"
        totals["lost"] = max(totals["lost"], len(l1) + len(l3) + len(ld))
        totals["duplicated"] = max(totals["duplicated"], d1 + d3 + dd)
        su.report(f"read with {role} {who} leading", acknowledged=C1 + D + C3,
                  lost=len(l1) + len(l3) + len(ld), duplicated=d1 + d3 + dd,
                  committed_lost=len(l1) + len(l3), acks1_lost=len(ld),
                  mismatches=len(bad), log_end=r.high)
        if l1 or l3:
            failures.append(f"read via {role} {who}: committed records lost: C1 {l1[:5]} "
                            f"({len(l1)}), C3 {l3[:5]} ({len(l3)})")
        if d1 or d3 or dd or bad:
            failures.append(f"read via {who}: duplicates {d1 + d3 + dd}, mismatches {bad[:3]}")
        if len(ld) != D:
            failures.append(f"read via {role} {who}: {D - len(ld)} D records (written to L "
                            f"alone, in an epoch F's log never had) are still there")
    same = reads[leader].by_offset() == reads[follower].by_offset()
    if not same:
        a, b = reads[follower].by_offset(), reads[leader].by_offset()
        diff = sorted(o for o in set(a) | set(b) if a.get(o) != b.get(o))
        failures.append(f"replicas differ at {len(diff)} offsets (first {diff[:5]}): "
                        f"F has {[a.get(o) for o in diff[:2]]}, L has {[b.get(o) for o in diff[:2]]}")
    # lost/duplicated: the worse of the two reads; only the D records may be lost.
    su.report("kip101", acknowledged=C1 + D + C3, committed=C1 + C3, lost=totals["lost"],
              duplicated=totals["duplicated"], acks1_lost_expected=D, replicas_identical=same,
              d_offsets_reused_by_c3=overlap)
    if failures:
        raise su.ScenarioFailure("; ".join(failures))


if __name__ == "__main__":
    sys.exit(su.run_scenario("scenario_kip101", body))
