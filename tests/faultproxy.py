"""A fault-injecting HTTP proxy in front of the loopback S3 test server (``tests/s3server.py``).

Every request is forwarded to the upstream server unless the seeded schedule picks it for a fault:

- ``throttle``: ``503 SlowDown`` with an S3 XML error body (not forwarded);
- ``server_error``: ``500 InternalError`` with an S3 XML error body (not forwarded);
- ``reset``: the connection is reset (TCP RST) after the request is read (not forwarded);
- ``delay``: the response is held back ``delay`` seconds, then sent;
- ``short_put``: a PUT with a body reaches the store with only its first ``keep`` share (half by
  default, none with ``keep=0``; Content-Length fixed up to match, checksum headers kept), as a
  faulty middlebox would deliver it; the store (moto checks no checksum) acknowledges it;
- ``short_get``: a GET's response body is cut in half and the connection closed (the headers keep
  the full Content-Length, as when a connection drops mid-transfer).

The schedule is one ``random.Random(seed)`` drawn once per request in arrival order: request ``n``
is disturbed with probability ``rate``, by a kind drawn from the enabled kinds; a kind that does not
fit the request (``short_put`` on a GET) waits for the next request it fits, so every kind keeps its
share of the faults; with
``match`` only requests whose path contains it are candidates, and ``limit`` caps the faults. What was
injected is counted in ``injected`` (kind -> count) and listed in ``log`` (kind, method, path);
``stored`` counts, per path, the PUTs that reached the store whole and were acknowledged (a shard
committed twice shows as a count of 2).
Loopback only; ``stop()`` (or leaving the ``with`` block) shuts the listener and its threads down.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

KINDS = ("throttle", "server_error", "reset", "delay", "short_put", "short_get")
_ERRORS = {"throttle": (503, "SlowDown", "Please reduce your request rate."),
           "server_error": (500, "InternalError", "We encountered an internal error. Please try again.")}
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


def error_body(code: str, message: str, resource: str) -> bytes:
    """An S3 XML error document."""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<Resource>{resource}</Resource><RequestId>faultproxy</RequestId></Error>").encode()


class FaultProxy:
    """A seeded fault-injecting proxy on a free loopback port.

    Args:
        upstream: the S3 server's endpoint (``http://127.0.0.1:PORT``).
        rate: the share of requests disturbed (0..1).
        kinds: the fault kinds enabled (a subset of ``KINDS``).
        seed: the schedule's seed.
        delay: seconds a ``delay`` fault holds a response back.
        timeout: seconds the proxy waits on the upstream server.
        keep: the share of a ``short_put`` body that reaches the store.
        match: only requests whose path contains this string may be disturbed.
        limit: at most this many faults in all (None: no cap).
    """

    def __init__(self, upstream: str, rate: float = 0.05, kinds: tuple[str, ...] = KINDS, seed: int = 0,
                 delay: float = 0.5, timeout: float = 30.0, keep: float = 0.5, match: str = "",
                 limit: int | None = None) -> None:
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; valid: {KINDS}")
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rate, self.kinds, self.delay, self.timeout = rate, tuple(kinds), delay, timeout
        self.keep, self.match, self.limit = keep, match, limit
        self.enabled = True  # False: forward everything (e.g. while a test sets up or inspects)
        self.injected: Counter = Counter()
        self.log: list[tuple[str, str, str]] = []
        self.stored: Counter = Counter()
        self.requests = 0
        self._rng = random.Random(seed)
        self._pending: list[str] = []  # drawn kinds waiting for a request they fit, oldest first
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="faultproxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever: only when it runs
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def choose(self, method: str, path: str, has_body: bool) -> str | None:
        """The fault for the next request (None: forward it untouched); counted when chosen."""
        with self._lock:
            self.requests += 1
            hit, pick = self._rng.random(), self._rng.random()  # two draws a request: one schedule
            if not self.enabled or self.match not in path:
                return None
            if self.limit is not None and sum(self.injected.values()) >= self.limit:
                return None
            if hit < self.rate:
                self._pending.append(self.kinds[int(pick * len(self.kinds))])
            fits = [k for k in self._pending if (k != "short_put" or (method == "PUT" and has_body))
                    and (k != "short_get" or method == "GET")]
            if not fits:
                return None
            self._pending.remove(fits[0])
            self.injected[fits[0]] += 1
            return fits[0]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up mid-response (it timed out or retried) is no error of the proxy's."""


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _handle(self) -> None:
            body = self._body()
            kind = proxy.choose(self.command, self.path, bool(body))
            if kind is not None:
                with proxy._lock:
                    proxy.log.append((kind, self.command, self.path))
            if kind in _ERRORS:
                status, code, message = _ERRORS[kind]
                data = error_body(code, message, self.path.split("?")[0])
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            if kind == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
                return
            if kind == "short_put":
                body = body[: int(len(body) * proxy.keep)]
            status, headers, data = self._forward(body)
            if self.command == "PUT" and kind != "short_put" and 200 <= status < 300:
                with proxy._lock:
                    proxy.stored[self.path.split("?")[0]] += 1
            if kind == "delay":
                time.sleep(proxy.delay)
            self.send_response(status)
            for k, v in headers:
                if k.lower() not in _HOP:
                    self.send_header(k, v)
            self.end_headers()
            if kind == "short_get" and data:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(data)

        def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
            conn = http.client.HTTPConnection(*proxy.upstream, timeout=proxy.timeout)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                headers["Content-Length"] = str(len(body))
                conn.request(self.command, self.path, body=body if body or self.command in ("PUT", "POST") else None,
                             headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                out = [(k, v) for k, v in resp.getheaders() if k.lower() != "content-length"]
                if self.command != "HEAD":
                    out.append(("Content-Length", str(len(data))))
                else:
                    out.append(("Content-Length", resp.getheader("Content-Length", "0")))
                return resp.status, out, data
            finally:
                conn.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    return Handler
