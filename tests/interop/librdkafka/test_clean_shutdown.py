"""interop_librdkafka_clean_shutdown: with the default flush policy, records acknowledged
(acks=all) before a clean broker shutdown (SIGTERM) are all there after the restart."""

import os
import time

from rdkafka_util import consume_all, create_topic, produce
from varve_interop import (make_records, restart_broker, scan_data_dir, unique_topic,
                           verify_roundtrip)

TOTAL = 5_000


def test_acknowledged_records_survive_clean_restart():
    topic = unique_topic("rdk-clean")
    create_topic(topic, partitions=3)
    records = make_records(TOTAL, seed=5, topic_tag="clean",
                           base_timestamp_ms=int(time.time() * 1000) - 900_000)
    acked, failed = produce(topic, records, {
        "acks": "all",
        "enable.idempotence": False,
        "compression.type": "gzip",
        "linger.ms": 5,
        "message.timeout.ms": 60000,
    })
    assert not failed, "%d delivery failures before the restart, first: %s" % (
        len(failed), [(r["key"], str(e)) for r, e in failed[:5]])
    out = restart_broker(kill=False)
    print("clean restart (SIGTERM): %s" % out, flush=True)
    consumed = consume_all(topic, partitions=3, timeout=120.0)
    verify_roundtrip(acked, consumed, True, 3, "librdkafka clean shutdown")

    files, batches, nrecords, problems, skipped = scan_data_dir(os.environ["VARVE_DATA_DIR"])
    print("crc scan: files=%d batches=%d records=%d problems=%d" % (
        files, batches, nrecords, len(problems)), flush=True)
    assert not problems, "segment scan found problems:\n  " + "\n  ".join(problems[:20])
