#!/usr/bin/env python3
"""Seed scenario (issue #4): the whole ISR is down. With the topic-level
unclean.leader.election.enable=true the controller elects the lagging replica and the records
it never had are lost (counted, and varve_unclean_leader_elections_total on the controller
goes up); with false the partition stays offline and nothing is lost once the ISR member
returns.

Two topics with replication factor 2 and min.insync.replicas=1, identical but for the
setting: scen-unclean-true and scen-unclean-false. In each the test uses the partition whose
replicas are [L, F], two brokers that are not the controller (so the controller, which
decides, keeps running):
1. BASE records with acks=all (on L and F).
2. SIGKILL F; the ISR shrinks to [L]. LAG records with acks=all: acknowledged by the ISR [L]
   alone — committed records F never gets.
3. SIGKILL L: the whole ISR is down; both partitions go offline (leader -1).
4. Restart F (the lagging replica):
   - true:  F is elected (unclean) at once; the LAG records are lost, BASE survives; the
            controller's varve_unclean_leader_elections_total increases by the number of
            the topic's partitions placed on exactly {L, F} (all of them went offline);
   - false: the partition stays offline (leader -1, LEADER_NOT_AVAILABLE) for the whole
            observation window; writes fail.
5. Restart L:
   - false: L (the ISR) leads again; F catches up; nothing is lost.
   - true:  L becomes a follower of F and must truncate its LAG records (leader epochs). To
            check that, F is killed once L is back in the ISR, L takes over cleanly, and the
            partition is read from L: it must be identical to what F served.
Prints `unclean=<v>: acknowledged=N lost=L duplicated=D ...` per topic.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import scenario_util as su  # noqa: E402
from confluent_kafka import KafkaError  # noqa: E402
from scenario_util import require  # noqa: E402

BASE = 1000
LAG = 1000
AFTER = 100
OFFLINE_WINDOW_S = 10
TOPIC = {True: "scen-unclean-true", False: "scen-unclean-false"}


def unclean_metric(c, ctl, errors):
    """The controller's varve_unclean_leader_elections_total, or None (the error is kept in
    `errors` and fails the test at the end, after every other check has been reported)."""
    if su.reference_mode(c):
        return None
    try:
        return su.metric(c, ctl, "varve_unclean_leader_elections_total")
    except su.ScenarioFailure as e:
        errors.append(str(e))
        return None


def body(c):
    ctl = su.controller_id(c)
    pair = set(su.pick_non_controller(c, 2)[1])
    part, leader, follower = {}, None, None
    for unclean in (True, False):
        parts = su.create_topic(c, TOPIC[unclean], 6, 2, {
            "unclean.leader.election.enable": str(unclean).lower(), "min.insync.replicas": "1"})
        if leader is None:
            p = su.pick_partition(c, TOPIC[unclean], parts, lambda l, r: set(r) == pair,
                                  f"replicas {sorted(pair)}")
            leader, follower = parts[p][1]
        else:
            p = su.pick_partition(c, TOPIC[unclean], parts,
                                  lambda l, r: r == [leader, follower] and l == leader,
                                  f"replicas [{leader}, {follower}] led by {leader}")
        part[unclean] = p
        if unclean:
            # Every partition of the topic on exactly {L, F} goes offline with them and is
            # elected uncleanly when F returns (written to or not).
            expected_unclean = sum(1 for _, r, _ in parts.values() if set(r) == set(parts[p][1]))
    require(c.partitions(TOPIC[True])[part[True]][0] == leader,
            f"{TOPIC[True]}-{part[True]} is not led by {leader}")
    su.log(f"controller {ctl}; leader L={leader}, follower F={follower}; partitions {part}")

    acked = {u: su.produce(c.bootstrap(), TOPIC[u], part[u], "base", 0, BASE, "all")
             for u in TOPIC}
    for u in TOPIC:
        require(len(acked[u].acked) == BASE, f"{TOPIC[u]}: base produce: {acked[u]}")

    c.kill(follower)
    for u in TOPIC:
        su.wait_isr(c, TOPIC[u], part[u], [leader], 30)
    lag = {u: su.produce(c.healthy_bootstrap(), TOPIC[u], part[u], "lag", BASE, LAG, "all")
           for u in TOPIC}
    for u in TOPIC:
        require(len(lag[u].acked) == LAG,
                f"{TOPIC[u]}: acks=all with ISR [{leader}] and min.insync.replicas=1: {lag[u]}")

    metric_errors = []
    unclean_before = unclean_metric(c, ctl, metric_errors)
    c.kill(leader)
    for u in TOPIC:
        su.wait_offline(c, TOPIC[u], part[u], 30)
    su.log("whole ISR down: both partitions offline")

    c.restart(follower)
    t0 = time.monotonic()
    su.wait_leader(c, TOPIC[True], part[True], 30, want=follower)
    su.log(f"{TOPIC[True]}-{part[True]}: lagging replica {follower} elected after "
           f"{time.monotonic() - t0:.1f}s")
    failures = []
    # unclean=false: offline for the whole window, whatever the lagging replica does.
    states = set()
    while time.monotonic() - t0 < OFFLINE_WINDOW_S:
        st = su.partition_state(c, TOPIC[False], part[False])
        states.add((st[0], st[3]))
        if st[0] >= 0:
            failures.append(f"{TOPIC[False]}-{part[False]} (unclean.leader.election.enable="
                            f"false) got leader {st[0]} (isr {st[2]}) while its only ISR member "
                            f"{leader} is down")
            break
        time.sleep(0.5)
    su.log(f"{TOPIC[False]}-{part[False]} while L is down, (leader, error) seen: {states}")
    if not failures and states != {(-1, KafkaError.LEADER_NOT_AVAILABLE)}:
        failures.append(f"{TOPIC[False]}-{part[False]} offline: Metadata showed (leader, error) "
                        f"{states}, expected only (-1, LEADER_NOT_AVAILABLE={KafkaError.LEADER_NOT_AVAILABLE})")
    down = su.produce(c.healthy_bootstrap(), TOPIC[False], part[False], "down", 0, 50, "1",
                      message_timeout_ms=4000, timeout=20)
    if down.acked:
        failures.append(f"{len(down.acked)} records acknowledged by offline "
                        f"{TOPIC[False]}-{part[False]}")
    unclean_after = unclean_metric(c, ctl, metric_errors)

    # unclean=true: F serves BASE only; it takes new writes.
    read_f = su.read_partition(c.bootstrap(), TOPIC[True], part[True])
    after = su.produce(c.bootstrap(), TOPIC[True], part[True], "after", BASE + LAG, AFTER, "all")
    require(len(after.acked) == AFTER, f"{TOPIC[True]} after the unclean election: {after}")

    c.restart(leader)
    su.wait_leader(c, TOPIC[False], part[False], 30, want=leader)
    for u in TOPIC:
        su.wait_isr(c, TOPIC[u], part[u], [leader, follower], 60)

    # unclean=false: nothing lost.
    r = su.read_partition(c.bootstrap(), TOPIC[False], part[False])
    lb, db = su.tally(acked[False], r, "base")
    ll, dl = su.tally(lag[False], r, "lag")
    bad = r.mismatches()
    su.report(f"unclean=false ({TOPIC[False]}-{part[False]})", acknowledged=BASE + LAG,
              lost=len(lb) + len(ll), duplicated=db + dl, offline_writes_acknowledged=len(down.acked),
              mismatches=len(bad), log_end=r.high)
    if lb or ll or db or dl or bad:
        failures.append(f"{TOPIC[False]}: lost base {lb[:5]} lag {ll[:5]}, duplicates {db + dl}, "
                        f"mismatches {bad[:3]}")

    # unclean=true: LAG lost, BASE and AFTER kept; L truncated its LAG records.
    read_after = su.read_partition(c.bootstrap(), TOPIC[True], part[True])
    c.kill(follower)
    su.wait_leader(c, TOPIC[True], part[True], 30, want=leader)
    read_l = su.read_partition(c.healthy_bootstrap(), TOPIC[True], part[True])
    lb, db = su.tally(acked[True], read_l, "base")
    ll, dl = su.tally(lag[True], read_l, "lag")
    la, da = su.tally(after, read_l, "after")
    bad = read_l.mismatches() + read_f.mismatches()
    same = read_l.by_offset() == read_after.by_offset()
    su.report(f"unclean=true ({TOPIC[True]}-{part[True]})", acknowledged=BASE + LAG + AFTER,
              lost=len(lb) + len(ll) + len(la), duplicated=db + dl + da, base_lost=len(lb),
              lag_lost=len(ll), after_lost=len(la), read_from_F=read_f.high,
              read_from_L=read_l.high, replicas_identical=same, mismatches=len(bad),
              unclean_elections_before=unclean_before, unclean_elections_after=unclean_after,
              unclean_elections_expected=f"+{expected_unclean}")
    if lb or la or db or dl or da or bad:
        failures.append(f"{TOPIC[True]}: lost base {lb[:5]} after {la[:5]}, duplicates "
                        f"{db + dl + da}, mismatches {bad[:3]}")
    if len(ll) != LAG:
        failures.append(f"{TOPIC[True]}: {LAG - len(ll)} of the {LAG} records F never had are "
                        f"readable after the unclean election of F")
    if read_f.high != BASE:
        failures.append(f"{TOPIC[True]}: F served log end {read_f.high} right after its unclean "
                        f"election, expected {BASE}")
    if not same:
        failures.append(f"{TOPIC[True]}: L's log (read with L as leader, {read_l.high} records) "
                        f"differs from F's ({read_after.high}): L did not converge")
    failures += metric_errors
    if su.reference_mode(c):
        su.log("reference mode: Varve's unclean-election metric and log line not checked")
    elif not metric_errors and unclean_after - unclean_before != expected_unclean:
        failures.append(f"controller {ctl}: varve_unclean_leader_elections_total "
                        f"{unclean_before} -> {unclean_after}, expected +{expected_unclean} (the "
                        f"partitions of {TOPIC[True]} on exactly [L, F])")
    if su.unclean_log_lines(c) == []:
        failures.append("no controller logged the unclean leader election")
    if failures:
        raise su.ScenarioFailure("; ".join(failures))


if __name__ == "__main__":
    sys.exit(su.run_scenario("scenario_unclean", body))
