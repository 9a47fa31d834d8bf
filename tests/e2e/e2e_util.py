"""Helpers shared by the end-to-end tests: broker process facts and bounded waits.

All tests run under tests/lib/with_broker.sh, which exports VARVE_BOOTSTRAP, VARVE_DATA_DIR,
VARVE_LOG, VARVE_PID_FILE and VARVE_RESTART.
"""
import os
import subprocess
import time


def env(name):
    value = os.environ.get(name)
    assert value, f"{name} is not set: run this test through tests/lib/with_broker.sh"
    return value


def bootstrap():
    return env("VARVE_BOOTSTRAP")


def broker_pid():
    with open(env("VARVE_PID_FILE")) as f:
        return int(f.read().strip())


def broker_alive():
    try:
        os.kill(broker_pid(), 0)
    except ProcessLookupError:
        return False
    # a zombie is not alive
    try:
        with open(f"/proc/{broker_pid()}/status") as f:
            for line in f:
                if line.startswith("State:"):
                    return "Z" not in line.split()[1]
    except FileNotFoundError:
        return False
    return True


def rss_kib(pid=None):
    with open(f"/proc/{pid or broker_pid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS line")


def restart(kind=""):
    """Restarts the broker (SIGTERM, or SIGKILL with kind='kill') on the same port and data."""
    args = [env("VARVE_RESTART")] + ([kind] if kind else [])
    out = subprocess.run(args, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, f"restart failed: {out.stdout}\n{out.stderr}"


def log_tail(lines=40):
    try:
        with open(env("VARVE_LOG"), errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"(no broker log: {e})"


def wait_until(what, predicate, timeout=30.0, interval=0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def unique(prefix):
    return f"{prefix}-{os.getpid()}-{int(time.time() * 1000) % 10_000_000}"


def create_topic(admin, name, partitions=1, config=None, replication=1, timeout=30):
    from confluent_kafka.admin import NewTopic
    fs = admin.create_topics([NewTopic(name, partitions, replication, config=config or {})],
                             operation_timeout=timeout, request_timeout=timeout)
    fs[name].result(timeout=timeout)
