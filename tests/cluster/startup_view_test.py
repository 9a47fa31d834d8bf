#!/usr/bin/env python3
"""A client's first answer from a broker that has not yet heard from the controller.

Regression (metrics_cluster_scrape failed once in CI): librdkafka's admin client failed
CreateTopics after 30 s with "Failed while waiting for controller". Its first Metadata answer
came from a broker whose first UpdateMetadata had not arrived yet (the controller's first try
found the broker's listener not open and waited 500 ms), so it read "no controller" and no
brokers. librdkafka does not ask again until some broker's state changes.

Now such a broker holds Metadata (and DescribeCluster) until the controller's view arrives
(at most 10 s), is not ready (/v1/status/ready 503) until then, and the controller retries
a failed send after 50 ms instead of 500 ms.

The cluster starts apart: every broker's listener proxy black-holes the other brokers, so only
the controller has a view of the cluster. Against a non-controller broker N:
1. N's /v1/status/ready answers 503 and the controller's 200.
2. An admin client bootstrapped at N alone asks to create a topic; 3 s later the brokers are
   joined.
3. The topic is created, every partition has a leader, and N is ready.
Fails on the build before the change (CreateTopics times out waiting for the controller).
"""

import os
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import scenario_util as su  # noqa: E402
from scenario_util import require  # noqa: E402

TOPIC = "startup-view"
HEAL_AFTER_S = 3.0


def ready_status(c, i):
    url = f"http://127.0.0.1:{c.brokers[i].admin_port}/v1/status/ready"
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def active_controller(c):
    def one():
        on = [b.id for b in c.brokers if su.metric(c, b.id, "varve_active_controller") == 1]
        return on[0] if len(on) == 1 else None
    return su.wait_for(one, 30, "exactly one broker with varve_active_controller 1")


def body(c):
    from confluent_kafka.admin import AdminClient, NewTopic
    ctl = active_controller(c)
    n = next(b.id for b in c.brokers if b.id != ctl)
    su.log(f"controller {ctl}; asking broker {n}, which has not heard from it")
    require(ready_status(c, ctl) == 200, f"controller {ctl} not ready: {ready_status(c, ctl)}")
    status = ready_status(c, n)
    require(status == 503, f"broker {n} answered /v1/status/ready {status} before it heard "
                           f"from the controller, expected 503")

    timer = threading.Timer(HEAL_AFTER_S, c.join_brokers)
    timer.start()
    t0 = time.monotonic()
    try:
        a = AdminClient({"bootstrap.servers": f"127.0.0.1:{c.brokers[n].proxy_port}"})
        fs = a.create_topics([NewTopic(TOPIC, 3, 3)], request_timeout=25, operation_timeout=25)
        try:
            fs[TOPIC].result(40)
        except Exception as e:
            raise su.ScenarioFailure(f"CreateTopics through broker {n} failed after "
                                     f"{time.monotonic() - t0:.1f}s: {e}")
    finally:
        timer.cancel()
        timer.join()
    took = time.monotonic() - t0
    su.log(f"topic created {took:.1f}s after the request (brokers joined at {HEAL_AFTER_S}s)")

    parts = su.wait_leaders(c, TOPIC, 3)
    su.log(f"{TOPIC}: {parts}")
    su.wait_for(lambda: True if ready_status(c, n) == 200 else None, 30,
                f"broker {n} ready after the brokers joined")
    su.report("startup_view", created_after_s=f"{took:.1f}", controller=ctl, asked=n)


def main():
    return su.run_scenario("startup_view", body, apart=True)


if __name__ == "__main__":
    sys.exit(main())
