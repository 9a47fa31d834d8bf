"""The librdkafka (confluent-kafka) member of groups_mixed_clients.

Usage: member_rdkafka.py TOPIC GROUP range|roundrobin OUTFILE SLEEP_MS
Subscribes in GROUP with the given partition.assignment.strategy and manual commits, and
appends one line per event to OUTFILE (each line one write(2), so it survives SIGKILL):
  ASSIGN p,p,...            after every assign/revoke/lost callback: the partitions it owns
  REC partition offset key  per processed record
  COMMIT ok n | COMMIT err  after each processed batch (process, then commit synchronously)
  CLOSED                    after a clean close (SIGTERM: close() sends LeaveGroup)
"""
import os
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaException


def main():
    topic, group, strategy, path, sleep_ms = sys.argv[1:6]
    sleep_s = int(sleep_ms) / 1000.0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def line(s):
        os.write(fd, (s + "\n").encode())

    owned = set()

    def report():
        line("ASSIGN " + ",".join(str(p) for p in sorted(owned)))

    def on_assign(consumer, parts):
        owned.update(tp.partition for tp in parts)
        report()

    def on_revoke(consumer, parts):
        owned.difference_update(tp.partition for tp in parts)
        report()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    c = Consumer({
        "bootstrap.servers": os.environ["VARVE_BOOTSTRAP"],
        "group.id": group,
        "client.id": "groups-rdkafka-member",
        "partition.assignment.strategy": strategy,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "max.poll.interval.ms": 30000,
    })
    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
    while not stop:
        msgs = c.consume(num_messages=100, timeout=0.2)
        n = 0
        for m in msgs:
            if m.error():
                print(f"rdkafka member: consume error {m.error()}", file=sys.stderr)
                continue
            line(f"REC {m.partition()} {m.offset()} {m.key().decode()}")
            n += 1
            if sleep_s:
                time.sleep(sleep_s)
        if n:
            try:
                c.commit(asynchronous=False)
                line(f"COMMIT ok {n}")
            except KafkaException as e:
                line(f"COMMIT err {e}")
    c.close()  # leaves the group
    line("CLOSED")


if __name__ == "__main__":
    main()
