"""Shared helpers for the Python interop tests (librdkafka via confluent-kafka, kafka-python).

Contract: every helper is client-neutral. A record is a plain dict
    {"topic", "partition", "offset", "key", "value", "headers", "timestamp"}
where headers is a list of (str, bytes|None) tuples in wire order and offset is None when the
producer cannot know it (acks=0). Checks raise AssertionError with a readable message.
"""

import os
import random
import struct
import subprocess
import time

try:
    import crc32c as _crc32c_mod

    def crc32c(data):
        return _crc32c_mod.crc32c(data)
except ImportError:  # the package is in requirements.txt; this only keeps the scan usable
    _TABLE = []
    for _n in range(256):
        _c = _n
        for _ in range(8):
            _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
        _TABLE.append(_c)

    def crc32c(data):
        c = 0xFFFFFFFF
        for b in data:
            c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
        return c ^ 0xFFFFFFFF


def bootstrap():
    value = os.environ.get("VARVE_BOOTSTRAP")
    assert value, "VARVE_BOOTSTRAP is not set: run this test through tests/lib/with_broker.sh"
    return value


def unique_topic(prefix):
    return "%s-%d-%d" % (prefix, os.getpid(), int(time.time() * 1000) % 10_000_000)


def make_records(count, seed, topic_tag, base_timestamp_ms, null_headers=True):
    """Deterministic keyed records with headers and explicit CreateTime timestamps.

    Every 4th record names its partition explicitly (i % 3); the rest leave it to the key.
    Values vary in size and compressibility; a few are empty or null, a few headers are null
    or repeated, so that the broker must keep batches byte-exact. null_headers=False leaves
    out null header values (for clients whose API refuses them).
    """
    rng = random.Random(seed)
    words = [b"varve", b"kafka", b"segment", b"offset", b"leader", b"epoch", b"fetch"]
    out = []
    for i in range(count):
        key = ("%s-key-%06d" % (topic_tag, i)).encode()
        if i % 97 == 13:
            value = None
        elif i % 89 == 7:
            value = b""
        else:
            text = b" ".join(rng.choice(words) for _ in range(rng.randint(1, 40)))
            value = b"%d|" % i + text + rng.randbytes(rng.randint(0, 64))
        headers = [("seq", str(i).encode()), ("tag", topic_tag.encode())]
        if i % 5 == 0:
            headers.append(("bin", rng.randbytes(rng.randint(0, 16))))
        if null_headers and i % 7 == 0:
            headers.append(("null-header", None))
        if i % 11 == 0:
            headers.append(("seq", b"dup"))
        out.append({
            "index": i,
            "partition": (i % 3) if i % 4 == 0 else None,
            "key": key,
            "value": value,
            "headers": headers,
            "timestamp": base_timestamp_ms + i,
        })
    return out


def _describe(rec):
    return "(p=%s off=%s key=%r ts=%s)" % (rec.get("partition"), rec.get("offset"),
                                          rec.get("key"), rec.get("timestamp"))


def _same_content(a, b):
    diffs = []
    for field in ("key", "value", "headers", "timestamp"):
        if a[field] != b[field]:
            diffs.append("%s: produced %r consumed %r" % (field, a[field], b[field]))
    return diffs


def verify_roundtrip(acked, consumed, known_offsets, partitions, label):
    """Compares acknowledged records with consumed records; returns the mismatch count and
    raises AssertionError listing the first problems.

    acked: produced records, each with the partition from its delivery report and (when
    known_offsets) the offset from it; in the order produce() was called.
    consumed: every record read from the beginning of each partition, with partition/offset.
    When offsets are unknown (acks=0), per partition the consumed offsets must be contiguous
    from 0 and the records must appear in production order.
    """
    problems = []
    by_pos = {}
    for rec in consumed:
        pos = (rec["partition"], rec["offset"])
        if pos in by_pos:
            problems.append("duplicate consumed position %s" % (pos,))
        by_pos[pos] = rec

    for p in range(partitions):
        offs = sorted(off for (pp, off) in by_pos if pp == p)
        if offs != list(range(len(offs))):
            problems.append("partition %d: consumed offsets not contiguous from 0 "
                            "(first=%s last=%s count=%d)" % (p, offs[:1], offs[-1:], len(offs)))

    if known_offsets:
        for rec in acked:
            pos = (rec["partition"], rec["offset"])
            got = by_pos.pop(pos, None)
            if got is None:
                problems.append("acknowledged record missing at %s %s" % (pos, _describe(rec)))
                continue
            for d in _same_content(rec, got):
                problems.append("at %s: %s" % (pos, d))
        for pos, rec in sorted(by_pos.items()):
            problems.append("consumed record never acknowledged at %s %s" % (pos, _describe(rec)))
    else:
        for p in range(partitions):
            want = [r for r in acked if r["partition"] == p]
            got = sorted((r for r in consumed if r["partition"] == p), key=lambda r: r["offset"])
            if len(want) != len(got):
                problems.append("partition %d: produced %d consumed %d" % (p, len(want), len(got)))
            for i, (a, b) in enumerate(zip(want, got)):
                for d in _same_content(a, b):
                    problems.append("partition %d offset %d: %s" % (p, b["offset"], d))

    print("%s: produced=%d consumed=%d mismatches=%d" % (label, len(acked), len(consumed),
                                                        len(problems)), flush=True)
    if problems:
        raise AssertionError("%s: %d problems, first ones:\n  %s" % (
            label, len(problems), "\n  ".join(problems[:25])))
    return 0


def restart_broker(kill):
    """Runs $VARVE_RESTART (SIGTERM, or SIGKILL when kill) and waits until it listens again."""
    script = os.environ.get("VARVE_RESTART")
    assert script, "VARVE_RESTART is not set: run this test through tests/lib/with_broker.sh"
    args = ["bash", script] + (["kill"] if kill else [])
    res = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, "restart failed (rc=%d): %s %s" % (
        res.returncode, res.stdout, res.stderr)
    return res.stdout.strip()


# ---- record batch (magic 2) scan ------------------------------------------------------------
# Layout (Kafka's documented v2 format, big-endian):
#   baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 | magic int8 |
#   crc uint32 | attributes int16 | lastOffsetDelta int32 | baseTimestamp int64 |
#   maxTimestamp int64 | producerId int64 | producerEpoch int16 | baseSequence int32 |
#   recordCount int32 | records...
# batchLength counts the bytes after the batchLength field; the CRC-32C covers attributes
# through the end of the batch.
_LOG_OVERHEAD = 12          # baseOffset + batchLength
_CRC_START = 21             # offset of attributes within the batch
_MIN_BATCH = 61             # header size of a v2 batch


def scan_segment(path):
    """Returns (batches, records, problems) for one segment file."""
    with open(path, "rb") as f:
        data = f.read()
    problems = []
    pos = 0
    batches = records = 0
    name = os.path.basename(path)
    try:
        expected_min = int(name.split(".")[0])
    except ValueError:
        expected_min = 0
    last_next = expected_min
    while pos < len(data):
        if len(data) - pos < _LOG_OVERHEAD:
            if any(data[pos:]):
                problems.append("%s@%d: %d trailing bytes (torn header)" % (name, pos, len(data) - pos))
            break
        base_offset, batch_len = struct.unpack_from(">qi", data, pos)
        if base_offset == 0 and batch_len == 0 and not any(data[pos:]):
            break  # zero-filled (preallocated) tail
        end = pos + _LOG_OVERHEAD + batch_len
        if batch_len < _MIN_BATCH - _LOG_OVERHEAD or end > len(data):
            problems.append("%s@%d: batch length %d runs past the file end %d (torn batch)"
                            % (name, pos, batch_len, len(data)))
            break
        magic = data[pos + 16]
        (stored_crc,) = struct.unpack_from(">I", data, pos + 17)
        if magic != 2:
            problems.append("%s@%d: magic %d" % (name, pos, magic))
        else:
            actual = crc32c(data[pos + _CRC_START:end])
            if actual != stored_crc:
                problems.append("%s@%d: CRC-32C mismatch stored=%08x computed=%08x (base offset %d)"
                                % (name, pos, stored_crc, actual, base_offset))
            (last_delta,) = struct.unpack_from(">i", data, pos + 23)
            (count,) = struct.unpack_from(">i", data, pos + 57)
            if base_offset < last_next:
                problems.append("%s@%d: base offset %d goes back (expected >= %d)"
                                % (name, pos, base_offset, last_next))
            last_next = base_offset + last_delta + 1
            records += count
        batches += 1
        pos = end
    return batches, records, problems


def scan_data_dir(root):
    """CRC-scans every segment (*.log named by a 20-digit base offset) under root.
    Returns (files, batches, records, problems, skipped_other_log_files)."""
    files = batches = records = 0
    problems, skipped = [], []
    for dirpath, _, names in os.walk(root):
        for n in sorted(names):
            if not n.endswith(".log"):
                continue
            full = os.path.join(dirpath, n)
            stem = n[:-4]
            if not (len(stem) == 20 and stem.isdigit()):
                skipped.append(full)
                continue
            b, r, p = scan_segment(full)
            files += 1
            batches += b
            records += r
            problems.extend(p)
    return files, batches, records, problems, skipped
