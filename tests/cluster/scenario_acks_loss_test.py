#!/usr/bin/env python3
"""Seed scenario (issue #4): acks=0 and acks=1 lose acknowledged records when the leader dies
right after the ack; acks=all with min.insync.replicas=2 loses nothing (the produce fails).

Three topics with replication factor 3; in each the test uses the partition led by broker L,
which is not the controller (x and y are its followers); unclean leader election stays
disabled:
  scen-acks0    written with acks=0
  scen-acks1    written with acks=1
  scen-acksall  written with acks=all, min.insync.replicas=2, no retries
1. BASE records per topic with acks=all while every replica runs (committed everywhere).
2. Cut the followers' connections to L (the harness proxy in front of L drops and black-holes
   every connection x and y open to it; x and y keep running and keep their ZooKeeper
   sessions). They cannot fetch, but for replica.lag.time.max.ms (5 s) they stay in the ISR:
   exactly the window in which Kafka's leader acknowledges acks=1 writes no follower has.
   (Not SIGSTOP: a stopped follower's socket still receives the answer to the long-poll fetch
   it sent before it stopped, so it would get the first records written after the stop.)
3. WINDOW records per topic (acks=0 and acks=1 are acknowledged by L alone; acks=all waits
   for the followers), then SIGKILL L — all within the 5 s — and reconnect x and y.
4. The controller elects x or y *cleanly* (they are in the ISR); L is restarted and must
   truncate its unreplicated tail (leader epochs; scenario_kip101_test.py checks that
   part by reading every replica). Every topic is read back.
Kafka's semantics, which the test asserts:
  - acks=0, acks=1: every base record survives; every window record was acknowledged and is
    lost (the new leader never had it); no unclean election happened (no controller logs one).
  - acks=all: no acknowledged record is lost (window records fail, or are acknowledged by the
    new leader after the failover — then they must be there).
Prints `acks=<a>: acknowledged=N lost=L duplicated=D ...` per topic.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import scenario_util as su  # noqa: E402
from scenario_util import require  # noqa: E402

BASE = 500
WINDOW = 1000
LAG_MAX_S = 5.0  # replica.lag.time.max.ms
TOPICS = {"0": "scen-acks0", "1": "scen-acks1", "all": "scen-acksall"}


def body(c):
    ctl, (leader,) = su.pick_non_controller(c, 1)
    followers = [b.id for b in c.brokers if b.id != leader]
    part = {}
    for acks, t in TOPICS.items():
        cfg = {"min.insync.replicas": "2" if acks == "all" else "1"}
        parts = su.create_topic(c, t, 3, 3, cfg)
        part[acks] = su.pick_partition(c, t, parts, lambda l, r: l == leader,
                                       f"leader {leader}")
    su.log(f"controller {ctl}, leader {leader}, followers {followers}, partitions {part}")

    base = {}
    for acks, t in TOPICS.items():
        base[acks] = su.produce(c.bootstrap(), t, part[acks], "base", 0, BASE, "all")
        require(len(base[acks].acked) == BASE,
                f"{t}: base acks=all produce with every replica up: {base[acks]}")
    # Every follower has fetched the base records (ISR full, HW at the end) before the fault.
    for acks, t in TOPICS.items():
        su.wait_isr(c, t, part[acks], [leader] + followers, 30)

    lproxy = c.brokers[leader].proxy
    dropped = lproxy.block(sources=set(followers))
    t_stop = time.monotonic()
    su.log(f"followers {followers} cut off from leader {leader} ({dropped} connections dropped)")
    win = {}
    bootstrap_l = f"127.0.0.1:{c.brokers[leader].proxy_port}"
    win["0"] = su.produce(bootstrap_l, TOPICS["0"], part["0"], "win", BASE, WINDOW, "0", timeout=3)
    win["1"] = su.produce(bootstrap_l, TOPICS["1"], part["1"], "win", BASE, WINDOW, "1", timeout=3)
    # acks=all: sent now, answered only when the followers catch up (they will not).
    win["all"] = su.Delivery()
    pall = su.producer(bootstrap_l, "all", retries=0, message_timeout_ms=30000)

    def on_all(err, msg):
        v = int(msg.value().split(b":")[1])
        if err is None:
            win["all"].acked[v] = msg.offset()
        else:
            win["all"].errors[v] = err
    for v in range(BASE, BASE + WINDOW):
        k, val, h, ts = su.record("win", v)
        pall.produce(TOPICS["all"], key=k, value=val, headers=h, timestamp=ts, partition=part["all"],
                     on_delivery=on_all)
    pall.poll(0.8)  # sends the batches; the acks=0 records have reached L by now too
    elapsed = time.monotonic() - t_stop
    require(elapsed < LAG_MAX_S - 1,
            f"setup too slow: {elapsed:.1f}s between cutting the followers off and the kill "
            f"(must stay under replica.lag.time.max.ms={LAG_MAX_S:.0f}s so the ISR is still full)")
    c.kill(leader)
    lproxy.unblock(sources=set(followers))
    su.log(f"leader {leader} killed {elapsed:.1f}s after the followers were cut off; "
           f"acks=0 {win['0']}, acks=1 {win['1']}")
    require(len(win["1"].acked) == WINDOW,
            f"acks=1 with the leader up: {win['1']} (every record should be acknowledged by "
            f"the leader alone)")
    require(len(win["0"].acked) == WINDOW, f"acks=0: {win['0']}")

    new = {}
    for acks, t in TOPICS.items():
        new[acks] = su.wait_leader(c, t, part[acks], 60, exclude=(leader,))
    su.log(f"new leaders {new}")
    left = pall.flush(60)
    require(left == 0, f"acks=all: {left} records without a delivery report after 60s")
    su.log(f"acks=all window: {win['all']}")

    c.restart(leader)
    for acks, t in TOPICS.items():
        su.wait_isr(c, t, part[acks], [leader] + followers, 90)
    unclean = su.unclean_log_lines(c)

    failures = []
    for acks, t in TOPICS.items():
        r = su.read_partition(c.bootstrap(), t, part[acks])
        by_off = acks != "0"
        lost_base, dup_base = su.tally(base[acks], r, "base")
        lost_win, dup_win = su.tally(win[acks], r, "win", by_offset=by_off)
        bad = r.mismatches()
        acked = len(base[acks].acked) + len(win[acks].acked)
        su.report(f"acks={acks} ({t}-{part[acks]})", acknowledged=acked, lost=len(lost_base) + len(lost_win),
                  duplicated=dup_base + dup_win, base_acknowledged=len(base[acks].acked),
                  base_lost=len(lost_base), window_acknowledged=len(win[acks].acked),
                  window_lost=len(lost_win), window_failed=len(win[acks].errors),
                  mismatches=len(bad), log_end=r.high)
        if lost_base or dup_base or dup_win or bad:
            failures.append(f"{t}: committed base records lost {lost_base[:5]} (of "
                            f"{len(lost_base)}), duplicates {dup_base + dup_win}, "
                            f"mismatches {bad[:3]}")
        if acks in ("0", "1") and len(lost_win) != len(win[acks].acked):
            failures.append(f"{t}: only {len(lost_win)} of {len(win[acks].acked)} acks={acks} "
                            f"window records lost; the new leader {new[acks]} never had them "
                            f"(it was cut off from the old leader), so Kafka loses all of them")
        if acks == "all" and lost_win:
            failures.append(f"{t}: acks=all acknowledged records lost: {lost_win[:10]} "
                            f"(of {len(lost_win)})")
    su.report("elections", unclean="not checked (reference mode)" if unclean is None
              else len(unclean))
    if unclean:
        failures.append(f"unclean leader election logged ({unclean[:2]}); the followers were "
                        f"in the ISR, the election must be clean")
    if failures:
        raise su.ScenarioFailure("; ".join(failures))


if __name__ == "__main__":
    sys.exit(su.run_scenario("scenario_acks_loss", body))
