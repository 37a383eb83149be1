"""A guarded urllib opener for the downloader: SSRF checks on every connection (redirects included),
an overall deadline and a size cap per response, and transparent gzip/deflate decoding.

img2dataset fetches with ``urllib.request.urlopen``, which uses the process-wide opener; installing
this one makes every hop of every download go through ``_guarded_connection``: the host is resolved
once, every resolved address is checked against the ``UrlPolicy``, and the socket connects to the
checked address itself (so a DNS answer cannot change between check and connect).
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.request
import zlib

from stages.download.url_guard import UrlPolicy, address_refusal

_DEFAULT = {"policy": UrlPolicy(), "deadline": 30.0, "max_bytes": 64 << 20}
_config = dict(_DEFAULT)
_lock = threading.Lock()


class RefusedAddress(OSError):
    """A connection (first hop or redirect) would reach an address the policy refuses."""


def _guarded_connection(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None, **kw):
    host, port = address
    policy: UrlPolicy = _config["policy"]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    last: OSError | None = None
    for family, stype, proto, _, sockaddr in infos:
        reason = address_refusal(sockaddr[0], policy)
        if reason:
            raise RefusedAddress(f"refused: {host} resolves to a {reason} address ({sockaddr[0]}); "
                                 "see download.allow_loopback / allow_private")
        sock = socket.socket(family, stype, proto)
        try:
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except OSError as err:
            sock.close()
            last = err
    raise last or OSError(f"cannot connect to {host}")


class _BoundedResponse:
    """Reads a response body in small chunks under an overall deadline and a byte cap."""

    def __init__(self, resp: http.client.HTTPResponse) -> None:
        self._resp = resp
        self.deadline = time.monotonic() + _config["deadline"]
        self.max_bytes = int(_config["max_bytes"])

    def read(self, amt: int | None = None) -> bytes:
        chunks, total = [], 0
        while True:
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"timed out: body not complete within {_config['deadline']:.0f} s")
            chunk = self._resp.read1(65536)
            if not chunk:
                if self._resp.length:  # EOF before Content-Length bytes: read1 does not raise this
                    raise http.client.IncompleteRead(b"".join(chunks), self._resp.length)
                break
            total += len(chunk)
            if total > self.max_bytes:
                raise ValueError(f"body larger than {self.max_bytes} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        encoding = (self._resp.headers.get("Content-Encoding") or "").lower().strip()
        if encoding in ("gzip", "x-gzip", "deflate"):
            wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
            d = zlib.decompressobj(wbits)
            body = d.decompress(body, self.max_bytes)
            if d.unconsumed_tail:
                raise ValueError(f"decoded body larger than {self.max_bytes} bytes")
        return body


class _Conn(http.client.HTTPConnection):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._create_connection = _guarded_connection


class _ConnS(http.client.HTTPSConnection):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._create_connection = _guarded_connection


class _HTTP(urllib.request.HTTPHandler):
    def http_open(self, req):
        return _wrap(self.do_open(_Conn, req))


class _HTTPS(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return _wrap(self.do_open(_ConnS, req, context=self._context))


def _wrap(resp):
    bounded = _BoundedResponse(resp)
    resp.read = bounded.read  # img2dataset calls r.read() once on the response
    return resp


def install(policy: UrlPolicy, deadline: float, max_bytes: int) -> None:
    """Make ``urllib.request.urlopen`` (used by img2dataset) go through the guarded handlers.

    Args:
        policy: which addresses may be reached.
        deadline: seconds allowed for a whole response body (a slow drip cannot hold a thread).
        max_bytes: largest body accepted (before and after gzip decoding).
    """
    with _lock:
        _config.update(policy=policy, deadline=float(deadline), max_bytes=int(max_bytes))
        opener = urllib.request.build_opener(_HTTP(), _HTTPS())
        opener.addheaders = [("Accept-Encoding", "gzip, deflate")]
        urllib.request.install_opener(opener)
