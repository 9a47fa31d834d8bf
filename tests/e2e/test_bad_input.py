"""Bad input over the raw Kafka protocol: every case runs on its own connection while a
second, healthy connection keeps working, and the broker process survives all of them.

Expects the broker to run with socket.request.max.bytes=1048576 (VARVE_OVERRIDES).
"""
import socket
import struct
import time

import pytest
from confluent_kafka.admin import AdminClient

import kwire
from kwire import i16, i32, i64, string
from e2e_util import bootstrap, broker_alive, rss_kib, create_topic, unique, log_tail

MAX_REQUEST_BYTES = 1048576


@pytest.fixture(scope="module")
def healthy():
    conn = kwire.Conn(bootstrap())
    yield conn
    conn.close()


def check_healthy(conn):
    """ApiVersions + Metadata round trip on the long-lived connection, and the pid lives."""
    assert broker_alive(), "broker process died\n" + log_tail()
    err, apis = conn.api_versions_v0()
    assert err == 0 and apis, f"ApiVersions on the healthy connection: error {err}"
    md = conn.metadata_v1()
    assert md["brokers"], "Metadata on the healthy connection returned no brokers"


def fresh():
    return kwire.Conn(bootstrap(), timeout=10)


def expect_closed(conn, what, timeout=5.0):
    assert conn.wait_closed(timeout), f"{what}: connection still open after {timeout}s"
    conn.close()


def test_truncated_frame(healthy):
    c = fresh()
    c.send_raw(i32(100) + b"\x00\x12\x00\x00" + b"\x00" * 6)  # 10 of 100 bytes
    c.sock.shutdown(socket.SHUT_WR)
    expect_closed(c, "truncated frame")
    check_healthy(healthy)


def test_frame_size_over_max_request_bytes(healthy):
    before = rss_kib()
    c = fresh()
    t0 = time.monotonic()
    c.send_raw(struct.pack(">i", 2**31 - 1) + b"\x00\x12\x00\x00\x00\x00\x00\x01")
    expect_closed(c, "frame size 2 GiB-1", timeout=3.0)
    took = time.monotonic() - t0
    assert took < 2.0, f"connection closed only after {took:.2f}s"
    after = rss_kib()
    assert after - before < 64 * 1024, f"broker RSS jumped from {before} KiB to {after} KiB"
    # Just over the limit is refused too; exactly at the limit is read.
    c = fresh()
    c.send_raw(i32(MAX_REQUEST_BYTES + 1) + b"\x00" * 16)
    expect_closed(c, "frame size socket.request.max.bytes+1")
    check_healthy(healthy)


@pytest.mark.parametrize("size", [-1, -2**31, -100])
def test_negative_frame_size(healthy, size):
    c = fresh()
    c.send_raw(i32(size) + b"\x00" * 8)
    expect_closed(c, f"frame size {size}")
    check_healthy(healthy)


@pytest.mark.parametrize("payload", [b"", b"\x00", b"\x00\x12\x00", b"\x00\x12\x00\x00\x00\x00\x00"])
def test_frame_shorter_than_request_header(healthy, payload):
    c = fresh()
    c.send_raw(kwire.frame(payload))
    expect_closed(c, f"{len(payload)}-byte frame")
    check_healthy(healthy)


def test_header_with_truncated_client_id(healthy):
    c = fresh()
    # api key 3 v1, correlation 1, client id length 50 but only 3 bytes follow
    c.send_raw(kwire.frame(i16(3) + i16(1) + i32(1) + i16(50) + b"abc"))
    expect_closed(c, "truncated client id")
    check_healthy(healthy)


def test_unknown_api_key(healthy):
    c = fresh()
    c.send_raw(kwire.frame(kwire.request_header_v1(9999, 0, 1)))
    expect_closed(c, "api key 9999")
    c = fresh()
    c.send_raw(kwire.frame(kwire.request_header_v1(-1, 0, 1)))
    expect_closed(c, "api key -1")
    check_healthy(healthy)


def test_unsupported_metadata_version(healthy):
    c = fresh()
    c.send_raw(kwire.frame(kwire.request_header_v2(kwire.API_METADATA, 99, 1) + b"\x00"))
    expect_closed(c, "Metadata v99")
    c = fresh()
    c.send_raw(kwire.frame(kwire.request_header_v1(kwire.API_METADATA, -1, 1) + i32(-1)))
    expect_closed(c, "Metadata v-1")
    check_healthy(healthy)


def test_api_versions_too_new_answers_v0_unsupported_version(healthy):
    c = fresh()
    # a future client: header v2 and a v99 body we cannot know
    c.send_raw(kwire.frame(kwire.request_header_v2(kwire.API_API_VERSIONS, 99, 77) +
                           b"\x05hello\x021\x00"))
    resp = kwire.Reader(c.recv_frame())
    assert resp.i32() == 77, "correlation id not echoed"
    err = resp.i16()
    apis = resp.array(lambda r: (r.i16(), r.i16(), r.i16()))
    assert resp.done(), "response is not a plain v0 ApiVersions response"
    assert err == 35, f"error_code {err}, expected 35 UNSUPPORTED_VERSION"
    assert apis, "empty api list"
    keys = {k: (lo, hi) for k, lo, hi in apis}
    assert 18 in keys and keys[18][0] == 0, f"ApiVersions range missing/odd: {keys.get(18)}"
    # the connection stays usable: the client retries at a version we speak
    err, apis = c.api_versions_v0()
    assert err == 0 and apis
    c.close()
    check_healthy(healthy)


GARBAGE = {
    "produce: transactional id longer than the frame":
        (kwire.API_PRODUCE, 3, b"\x7f\xff" + b"\xab" * 20),
    "produce: topic array count 2^31-1":
        (kwire.API_PRODUCE, 3, string(None) + i16(1) + i32(1000) + i32(0x7FFFFFFF) + b"\x00" * 8),
    "produce: records length past the frame":
        (kwire.API_PRODUCE, 3, string(None) + i16(1) + i32(1000) + i32(1) + string("t") +
         i32(1) + i32(0) + i32(0x10000000) + b"\x00" * 12),
    "produce: random bytes": (kwire.API_PRODUCE, 3, bytes(range(200, 256)) * 3),
    "metadata: topic array count 2^31-1": (kwire.API_METADATA, 1, i32(0x7FFFFFFF) + b"\x00\x01a"),
    "metadata: topic name length past the frame": (kwire.API_METADATA, 1, i32(1) + i16(5000) + b"x"),
    "metadata: negative topic name length": (kwire.API_METADATA, 1, i32(1) + i16(-7)),
    "metadata v9 (flexible): compact array length past the frame":
        (kwire.API_METADATA, 9, b"\xff\xff\xff\x0f" + b"\x00"),
}


@pytest.mark.parametrize("case", sorted(GARBAGE))
def test_garbage_body(healthy, case):
    api, version, body = GARBAGE[case]
    hv = 2 if (api == kwire.API_METADATA and version >= 9) else 1
    hdr = (kwire.request_header_v2 if hv == 2 else kwire.request_header_v1)(api, version, 5)
    c = fresh()
    c.send_raw(kwire.frame(hdr + body))
    expect_closed(c, case)
    check_healthy(healthy)


# ------------------------------------------------------------------ produce validation
@pytest.fixture(scope="module")
def topic():
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    name = unique("e2e-bad")
    create_topic(admin, name, 1, {"max.message.bytes": "4096"})
    return name


def latest(conn, topic):
    r = conn.list_offsets_v1(topic, 0, -1)
    assert r["error"] == 0, f"ListOffsets error {r['error']}"
    return r["offset"]


def test_produce_good_batch_baseline(healthy, topic):
    c = fresh()
    r = c.produce_v3(topic, 0, kwire.record_batch([b"a", b"b", b"c"]))
    assert r["error"] == 0 and r["base_offset"] == 0, r
    assert latest(c, topic) == 3
    c.close()


def test_produce_bad_crc_is_corrupt_message(healthy, topic):
    c = fresh()
    before = latest(c, topic)
    r = c.produce_v3(topic, 0, kwire.record_batch([b"x"] * 5, corrupt_crc=True))
    assert r["error"] == 2, f"bad CRC: error {r['error']}, expected 2 CORRUPT_MESSAGE"
    assert latest(c, topic) == before, "a batch with a bad CRC was appended"
    c.close()
    check_healthy(healthy)


def test_produce_magic_1_is_refused(healthy, topic):
    c = fresh()
    before = latest(c, topic)
    r = c.produce_v3(topic, 0, kwire.message_set_v1([b"old", b"format"]))
    # UNSUPPORTED_FOR_MESSAGE_FORMAT, CORRUPT_MESSAGE, or INVALID_RECORD (Kafka's answer
    # for non-v2 batches in Produce v3+)
    assert r["error"] in (43, 2, 87), f"magic 1: error {r['error']}"
    assert latest(c, topic) == before, "a magic-1 message set was appended"
    # a v2 header claiming magic 1 (CRC otherwise valid for v2)
    r = c.produce_v3(topic, 0, kwire.record_batch([b"m"], magic=1))
    assert r["error"] in (43, 2, 87), f"v2 batch with magic byte 1: error {r['error']}"
    assert latest(c, topic) == before
    c.close()
    check_healthy(healthy)


def test_produce_invalid_acks(healthy, topic):
    c = fresh()
    before = latest(c, topic)
    r = c.produce_v3(topic, 0, kwire.record_batch([b"acks"]), acks=5)
    assert r["error"] == 21, f"acks=5: error {r['error']}, expected 21 INVALID_REQUIRED_ACKS"
    assert latest(c, topic) == before
    c.close()
    check_healthy(healthy)


def test_produce_over_max_message_bytes(healthy, topic):
    c = fresh()
    before = latest(c, topic)
    r = c.produce_v3(topic, 0, kwire.record_batch([b"v" * 1000] * 8))  # ~8 KB > 4096
    assert r["error"] == 10, f"8 KB batch: error {r['error']}, expected 10 MESSAGE_TOO_LARGE"
    assert latest(c, topic) == before
    # just under the limit is accepted
    r = c.produce_v3(topic, 0, kwire.record_batch([b"v" * 1000] * 3))
    assert r["error"] == 0, f"3 KB batch: error {r['error']}"
    assert latest(c, topic) == before + 3
    c.close()
    check_healthy(healthy)


def test_produce_unknown_topic(healthy):
    c = fresh()
    name = unique("e2e-no-such-topic")
    r = c.produce_v3(name, 0, kwire.record_batch([b"nowhere"]))
    assert r["error"] == 3, f"unknown topic: error {r['error']}, expected 3"
    c.close()
    check_healthy(healthy)


def test_produce_unknown_partition(healthy, topic):
    c = fresh()
    r = c.produce_v3(topic, 7, kwire.record_batch([b"nowhere"]))
    assert r["error"] == 3, f"partition 7 of a 1-partition topic: error {r['error']}"
    c.close()
    check_healthy(healthy)


def test_produce_batch_length_disagrees_with_records_size(healthy, topic):
    c = fresh()
    before = latest(c, topic)
    batch = kwire.record_batch([b"p", b"q"])
    r = c.produce_v3(topic, 0, batch[:-3])  # batch length field now overstates the bytes
    assert r["error"] in (2, 87), f"truncated batch: error {r['error']}"
    assert latest(c, topic) == before
    c.close()
    check_healthy(healthy)


def test_frame_of_exactly_max_request_bytes_is_read_and_answered(healthy, topic):
    c = fresh()
    before = latest(c, topic)
    # Produce v3 frame of exactly socket.request.max.bytes: one record padded to fit
    probe = kwire.record_batch([b""])
    hdr = kwire.request_header_v1(kwire.API_PRODUCE, 3, 1)
    fixed = len(hdr) + 2 + 2 + 4 + 4 + 2 + len(topic) + 4 + 4 + 4  # up to the records bytes
    value_len = MAX_REQUEST_BYTES - fixed - len(probe)
    for _ in range(4):  # the value's varint length grows the record; converge
        batch = kwire.record_batch([b"z" * value_len])
        value_len -= fixed + len(batch) - MAX_REQUEST_BYTES
    batch = kwire.record_batch([b"z" * value_len])
    assert fixed + len(batch) == MAX_REQUEST_BYTES, (fixed + len(batch))
    c.corr = 0
    r = c.produce_v3(topic, 0, batch)
    assert r["error"] == 10, f"1 MiB batch on a 4 KiB topic: error {r['error']}, expected 10"
    assert latest(c, topic) == before
    c.close()
    check_healthy(healthy)


def test_pipelined_requests_are_answered_in_order(healthy):
    c = fresh()
    frames = b""
    for corr in range(1, 51):
        api = kwire.API_API_VERSIONS if corr % 2 else kwire.API_METADATA
        body = b"" if api == kwire.API_API_VERSIONS else i32(0)
        frames += kwire.frame(kwire.request_header_v1(api, 0 if corr % 2 else 1, corr) + body)
    c.send_raw(frames)
    for corr in range(1, 51):
        resp = kwire.Reader(c.recv_frame())
        got = resp.i32()
        assert got == corr, f"response {corr} carries correlation id {got}"
    c.close()
    check_healthy(healthy)


def test_broker_still_alive_at_the_end(healthy):
    check_healthy(healthy)
    assert broker_alive()
