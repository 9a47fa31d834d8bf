"""Minimal Kafka wire encoder/decoder for raw-protocol end-to-end tests.

Written for these tests only (no project code imported): request headers v1/v2, a few
request bodies (ApiVersions v0, Metadata v1, Produce v3, ListOffsets v1), record batch v2
and magic-1 message sets, and a table-driven CRC-32C.
"""
import socket
import struct
import time
import zlib

# ---------------------------------------------------------------- CRC-32C (Castagnoli)
_CRC32C_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C_TABLE.append(_c)


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard check value


# ---------------------------------------------------------------- primitives
def i8(v): return struct.pack(">b", v)
def i16(v): return struct.pack(">h", v)
def i32(v): return struct.pack(">i", v)
def u32(v): return struct.pack(">I", v)
def i64(v): return struct.pack(">q", v)


def string(s):
    if s is None:
        return i16(-1)
    b = s.encode()
    return i16(len(b)) + b


def nbytes(b):
    if b is None:
        return i32(-1)
    return i32(len(b)) + b


def array(items, enc):
    if items is None:
        return i32(-1)
    return i32(len(items)) + b"".join(enc(x) for x in items)


def uvarint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(v):  # zig-zag, 64-bit
    return uvarint((v << 1) ^ (v >> 63))


class Reader:
    def __init__(self, buf):
        self.buf, self.pos = buf, 0

    def take(self, n):
        if self.pos + n > len(self.buf):
            raise ValueError(f"short response: need {n} at {self.pos}, have {len(self.buf)}")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self): return struct.unpack(">b", self.take(1))[0]
    def i16(self): return struct.unpack(">h", self.take(2))[0]
    def i32(self): return struct.unpack(">i", self.take(4))[0]
    def i64(self): return struct.unpack(">q", self.take(8))[0]

    def string(self):
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def array(self, dec):
        n = self.i32()
        return None if n < 0 else [dec(self) for _ in range(n)]

    def done(self):
        return self.pos == len(self.buf)


# ---------------------------------------------------------------- framing
API_PRODUCE, API_LIST_OFFSETS, API_METADATA, API_API_VERSIONS = 0, 2, 3, 18


def request_header_v1(api_key, version, correlation_id, client_id="e2e"):
    return i16(api_key) + i16(version) + i32(correlation_id) + string(client_id)


def request_header_v2(api_key, version, correlation_id, client_id="e2e"):
    return request_header_v1(api_key, version, correlation_id, client_id) + uvarint(0)


def frame(payload):
    return i32(len(payload)) + payload


class ConnectionClosed(Exception):
    pass


class Conn:
    """One TCP connection to the broker; requests are answered in order."""

    def __init__(self, bootstrap, timeout=10.0):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.settimeout(timeout)
        self.corr = 0

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv_exact(self, n):
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionClosed(f"connection closed after {len(out)} of {n} bytes")
            out += chunk
        return bytes(out)

    def recv_frame(self):
        size = struct.unpack(">i", self.recv_exact(4))[0]
        return self.recv_exact(size)

    def wait_closed(self, timeout=5.0):
        """True if the peer closes (EOF or reset) within timeout without sending data."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                data = self.sock.recv(4096)
                if not data:
                    return True
                raise AssertionError(f"expected the broker to close the connection, got {data[:64]!r}")
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        return False

    def request(self, api_key, version, body, header_version=1):
        self.corr += 1
        hdr = (request_header_v2 if header_version == 2 else request_header_v1)(
            api_key, version, self.corr)
        self.send_raw(frame(hdr + body))
        resp = self.recv_frame()
        r = Reader(resp)
        corr = r.i32()
        assert corr == self.corr, f"correlation id {corr} != {self.corr}"
        return r

    # ------------------------------------------------------------ typed requests
    def api_versions_v0(self):
        r = self.request(API_API_VERSIONS, 0, b"")
        err = r.i16()
        apis = r.array(lambda r: (r.i16(), r.i16(), r.i16()))
        return err, apis

    def metadata_v1(self, topics=None):
        r = self.request(API_METADATA, 1, array(topics, string))
        brokers = r.array(lambda r: (r.i32(), r.string(), r.i32(), r.string()))
        controller = r.i32()

        def part(r):
            return dict(error=r.i16(), index=r.i32(), leader=r.i32(),
                        replicas=r.array(Reader.i32), isr=r.array(Reader.i32))

        def topic(r):
            return dict(error=r.i16(), name=r.string(), internal=r.i8(), partitions=r.array(part))

        topics = r.array(topic)
        assert r.done(), "trailing bytes in Metadata v1 response"
        return dict(brokers=brokers, controller=controller, topics=topics)

    def produce_v3(self, topic, partition, records, acks=-1, timeout_ms=10000):
        body = (string(None) + i16(acks) + i32(timeout_ms) +
                array([topic], lambda t: string(t) + array(
                    [partition], lambda p: i32(p) + nbytes(records))))
        r = self.request(API_PRODUCE, 3, body)

        def part(r):
            return dict(index=r.i32(), error=r.i16(), base_offset=r.i64(), append_time=r.i64())

        topics = r.array(lambda r: (r.string(), r.array(part)))
        r.i32()  # throttle
        assert r.done(), "trailing bytes in Produce v3 response"
        return topics[0][1][0]

    def list_offsets_v1(self, topic, partition, timestamp=-1):
        body = i32(-1) + array([topic], lambda t: string(t) + array(
            [partition], lambda p: i32(p) + i64(timestamp)))
        r = self.request(API_LIST_OFFSETS, 1, body)

        def part(r):
            return dict(index=r.i32(), error=r.i16(), timestamp=r.i64(), offset=r.i64())

        topics = r.array(lambda r: (r.string(), r.array(part)))
        assert r.done(), "trailing bytes in ListOffsets v1 response"
        return topics[0][1][0]


# ---------------------------------------------------------------- record batches
def record(offset_delta, ts_delta, key, value, headers=()):
    body = (i8(0) + varint(ts_delta) + varint(offset_delta) +
            (varint(-1) if key is None else varint(len(key)) + key) +
            (varint(-1) if value is None else varint(len(value)) + value) +
            varint(len(headers)) +
            b"".join(varint(len(k)) + k + varint(len(v)) + v for k, v in headers))
    return varint(len(body)) + body


def record_batch(values, base_ts=None, corrupt_crc=False, magic=2):
    """A v2 batch (uncompressed, no producer id) holding one record per value."""
    base_ts = int(time.time() * 1000) if base_ts is None else base_ts
    recs = b"".join(record(i, 0, None, v) for i, v in enumerate(values))
    after_crc = (i16(0) + i32(len(values) - 1) + i64(base_ts) + i64(base_ts) +
                 i64(-1) + i16(-1) + i32(-1) + i32(len(values)) + recs)
    crc = crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0xDEADBEEF
    rest = i32(0) + i8(magic) + u32(crc) + after_crc  # leader epoch, magic, crc, ...
    return i64(0) + i32(len(rest)) + rest


def message_set_v1(values, ts=None):
    """Legacy magic-1 message set (uncompressed)."""
    ts = int(time.time() * 1000) if ts is None else ts
    out = b""
    for i, v in enumerate(values):
        body = i8(1) + i8(0) + i64(ts) + nbytes(None) + nbytes(v)
        msg = u32(zlib.crc32(body)) + body
        out += i64(i) + i32(len(msg)) + msg
    return out


# ---------------------------------------------------------------- on-disk scanning
def scan_log_file(path):
    """Walks every batch of a segment file; returns (batches, records, [problems])."""
    with open(path, "rb") as f:
        data = f.read()
    pos, batches, records, problems = 0, 0, 0, []
    while pos < len(data):
        if len(data) - pos < 61:
            # preallocated/zero tail is not expected in Kafka-format segments
            problems.append(f"{path}: {len(data) - pos} trailing bytes at {pos}")
            break
        base_offset, length = struct.unpack_from(">qi", data, pos)
        if length < 49 or pos + 12 + length > len(data):
            problems.append(f"{path}: bad batch length {length} at {pos}")
            break
        magic = data[pos + 16]
        if magic != 2:
            problems.append(f"{path}: magic {magic} at {pos}")
            break
        stored = struct.unpack_from(">I", data, pos + 17)[0]
        actual = crc32c(data[pos + 21:pos + 12 + length])
        if stored != actual:
            problems.append(f"{path}: crc mismatch at {pos} (base offset {base_offset})")
        records += struct.unpack_from(">i", data, pos + 57)[0]
        batches += 1
        pos += 12 + length
    return batches, records, problems
