"""A Kafka-aware TCP proxy that can lose Produce responses, for the idempotence tests.

LossyProxy listens on 127.0.0.1:<listen_port> and forwards every client connection to the
broker at upstream (host, port), frame by frame. A Kafka frame is a 4-byte big-endian size
followed by that many bytes. Requests start with api_key int16, api_version int16,
correlation_id int32; responses start with correlation_id int32. The proxy remembers, per
connection, which api each outstanding correlation id belongs to.

Fault: the first `drop_produce_responses` Produce responses (api key 0) that come back from
the broker are swallowed and both sides of that connection are closed at once. With
pass_between=k, k Produce responses are let through after each dropped one, so the drops hit
different batches instead of the same batch's retries. The broker
has appended the batch; the client never learns it. This is a response lost in the network.
Every other frame passes through unchanged, in order.

The proxy does not rewrite Metadata: the broker must advertise the proxy's address itself
(advertised.listeners), otherwise the client would bypass the proxy after bootstrap.

Threading: the proxy runs its own asyncio loop on a background thread (start()/stop()).
stats() may be called from any thread; it returns a copy taken under a lock.
"""

import asyncio
import struct
import threading

PRODUCE_API_KEY = 0
MAX_FRAME = 256 * 1024 * 1024


class ProxyProtocolError(Exception):
    pass


class _Reader:
    def __init__(self, data, pos=0):
        self.data, self.pos = data, pos

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return v[0]

    def uvarint(self):
        shift = value = 0
        while True:
            b = self.data[self.pos]
            self.pos += 1
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7

    def skip_tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.pos += self.uvarint()


def first_produce_result(api_version, body):
    """(topic, partition, error_code, base_offset) of the first partition entry of a Produce
    response frame body (correlation id first), or None if it names no partition. Versions 9+
    are flexible (tagged fields in the header, compact strings and arrays). Raises
    ProxyProtocolError on a truncated body."""
    flexible = api_version >= 9
    r = _Reader(body, 4)
    try:
        if flexible:
            r.skip_tags()
        n_topics = r.uvarint() - 1 if flexible else r.take(">i")
        if n_topics <= 0:
            return None
        n = r.uvarint() - 1 if flexible else r.take(">h")
        topic = bytes(r.data[r.pos:r.pos + n]).decode()
        r.pos += n
        n_parts = r.uvarint() - 1 if flexible else r.take(">i")
        if n_parts <= 0:
            return None
        partition = r.take(">i")
        error = r.take(">h")
        base_offset = r.take(">q")
        return (topic, partition, error, base_offset)
    except (struct.error, IndexError, UnicodeDecodeError) as e:
        raise ProxyProtocolError("undecodable Produce v%d response: %s" % (api_version, e))


class LossyProxy:
    def __init__(self, listen_port, upstream, drop_produce_responses, pass_between=0):
        self._listen_port = listen_port
        self._upstream = upstream
        self._lock = threading.Lock()
        self._drops_left = drop_produce_responses
        self._pass_between = pass_between
        self._passes_left = 0  # Produce responses still to let through before the next drop
        self._stats = {
            "connections": 0,
            "requests": {},            # api_key -> count of requests forwarded to the broker
            "responses": {},           # api_key -> count of responses forwarded to the client
            "dropped_produce": 0,      # Produce responses swallowed on purpose
            "lost_with_close": 0,      # other outstanding requests whose response the close lost
            "max_produce_in_flight": 0,  # most Produce requests outstanding on one connection
            "dropped": [],             # per dropped response: (api_version, first_produce_result)
            "errors": [],              # protocol errors seen (a broken frame is a test failure)
        }
        self._loop = None
        self._thread = None
        self._server = None
        self._tasks = set()

    # ---- control (any thread) ----

    def start(self, timeout=10):
        ready = threading.Event()
        failure = []

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            try:
                self._server = self._loop.run_until_complete(asyncio.start_server(
                    self._handle, "127.0.0.1", self._listen_port))
            except Exception as e:  # reported to start()
                failure.append(e)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="lossy-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("proxy did not start within %ss" % timeout)
        if failure:
            raise RuntimeError("proxy could not listen on 127.0.0.1:%d: %s"
                               % (self._listen_port, failure[0]))

    def stop(self, timeout=10):
        if self._loop is None or not self._thread.is_alive():
            return

        async def shutdown():
            self._server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        fut = asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        try:
            fut.result(timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)

    def stats(self):
        with self._lock:
            s = dict(self._stats)
            s["requests"] = dict(s["requests"])
            s["responses"] = dict(s["responses"])
            s["errors"] = list(s["errors"])
            s["dropped"] = list(s["dropped"])
            return s

    # ---- proxy (loop thread) ----

    def _count(self, field, key=None, n=1):
        with self._lock:
            if key is None:
                self._stats[field] += n
            else:
                self._stats[field][key] = self._stats[field].get(key, 0) + n

    def _take_drop(self):
        with self._lock:
            if self._drops_left <= 0:
                return False
            if self._passes_left > 0:
                self._passes_left -= 1
                return False
            self._drops_left -= 1
            self._passes_left = self._pass_between
            self._stats["dropped_produce"] += 1
            return True

    @staticmethod
    async def _read_frame(reader):
        """Returns (size prefix, body) or None at a clean end of stream."""
        try:
            prefix = await reader.readexactly(4)
        except asyncio.IncompleteReadError as e:
            if e.partial:
                raise ProxyProtocolError("stream ended inside a size prefix")
            return None
        (size,) = struct.unpack(">i", prefix)
        if size < 4 or size > MAX_FRAME:
            raise ProxyProtocolError("implausible frame size %d" % size)
        return prefix, await reader.readexactly(size)

    async def _handle(self, client_reader, client_writer):
        task = asyncio.current_task()
        self._tasks.add(task)
        self._count("connections")
        broker_writer = None
        try:
            broker_reader, broker_writer = await asyncio.wait_for(
                asyncio.open_connection(*self._upstream), 10)
            outstanding = {}  # correlation id -> api key

            async def client_to_broker():
                while True:
                    frame = await self._read_frame(client_reader)
                    if frame is None:
                        return
                    prefix, body = frame
                    if len(body) < 8:
                        raise ProxyProtocolError("request of %d bytes has no header" % len(body))
                    api_key, api_version, corr = struct.unpack_from(">hhi", body, 0)
                    # acks=0 Produce gets no response; these tests never use it, and an entry
                    # left behind is harmless.
                    outstanding[corr] = (api_key, api_version)
                    self._count("requests", api_key)
                    if api_key == PRODUCE_API_KEY:
                        n = sum(1 for k, _ in outstanding.values() if k == PRODUCE_API_KEY)
                        with self._lock:
                            self._stats["max_produce_in_flight"] = max(
                                self._stats["max_produce_in_flight"], n)
                    broker_writer.write(prefix + body)
                    await broker_writer.drain()

            async def broker_to_client():
                while True:
                    frame = await self._read_frame(broker_reader)
                    if frame is None:
                        return
                    prefix, body = frame
                    (corr,) = struct.unpack_from(">i", body, 0)
                    if corr not in outstanding:
                        raise ProxyProtocolError("response for unknown correlation id %d" % corr)
                    api_key, api_version = outstanding.pop(corr)
                    if api_key == PRODUCE_API_KEY and self._take_drop():
                        parsed = first_produce_result(api_version, body)
                        with self._lock:
                            self._stats["dropped"].append((api_version, parsed))
                            self._stats["lost_with_close"] += len(outstanding)
                        return  # swallow it; the finally below closes both sides
                    self._count("responses", api_key)
                    client_writer.write(prefix + body)
                    await client_writer.drain()

            pumps = [asyncio.ensure_future(client_to_broker()),
                     asyncio.ensure_future(broker_to_client())]
            done, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for p in pending:
                p.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for p in done:
                e = p.exception()
                if isinstance(e, ProxyProtocolError):
                    with self._lock:
                        self._stats["errors"].append(str(e))
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass  # a peer went away; the other side is closed below
        except asyncio.CancelledError:
            pass
        finally:
            for w in (client_writer, broker_writer):
                if w is not None:
                    w.close()
            self._tasks.discard(task)
