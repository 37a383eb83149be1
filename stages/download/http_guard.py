"""A guarded urllib opener for the downloader: SSRF checks on every connection (redirects included),
an overall deadline and a size cap per response, and transparent gzip/deflate decoding.

img2dataset fetches with ``urllib.request.urlopen``, which uses the process-wide opener; installing
this one makes every hop of every download go through ``_guarded_connection``: the host is resolved
once, every resolved address is checked against the ``UrlPolicy``, and the socket connects to the
checked address itself (so a DNS answer cannot change between check and connect).

The opener is assembled handler by handler (not ``build_opener``, which adds urllib's FTP, file and
data handlers): it speaks http and https only, every redirect target is checked (scheme and address)
before it is followed, and environment proxies (``http_proxy``...) are ignored. A proxy is used only
when ``download.proxy`` names one; the target URL is then checked before the request is handed to it.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.parse
import urllib.request
import zlib

from regionset.stages.download.url_guard import UrlPolicy, address_refusal, check_url

_DEFAULT = {"policy": UrlPolicy(), "deadline": 30.0, "max_bytes": 64 << 20, "proxy_at": None}
_config = dict(_DEFAULT)
_lock = threading.Lock()


class RefusedAddress(OSError):
    """A connection (first hop or redirect) would reach an address the policy refuses."""


class RefusedRedirect(RefusedAddress):
    """A redirect points at a scheme other than http/https, or at a refused address."""


def _guarded_connection(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None, **kw):
    host, port = address
    policy: UrlPolicy = _config["policy"]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    last: OSError | None = None
    proxy = _config["proxy_at"] == (str(host).lower(), int(port))  # configured by hand: not policed
    for family, stype, proto, _, sockaddr in infos:
        reason = None if proxy else address_refusal(sockaddr[0], policy)
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


def _refusal(url: str, what: str, unresolvable_ok: bool = True) -> None:
    reason = check_url(url, _config["policy"], unresolvable_ok=unresolvable_ok)
    if reason:
        reason = reason.removeprefix("refused: ")
        raise RefusedRedirect(f"refused: {what} {url[:200]}: {reason}")


class _GuardedRedirect(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to http/https on an allowed address (checked before urllib looks)."""

    def http_error_302(self, req, fp, code, msg, headers):
        location = headers.get("location") or headers.get("uri")
        if location:
            try:
                _refusal(urllib.parse.urljoin(req.full_url, location), f"redirect ({code}) to")
            except RefusedRedirect:
                fp.close()
                raise
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        _refusal(newurl, f"redirect ({code}) to")  # the URL urllib will really follow
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _GuardedProxy(urllib.request.ProxyHandler):
    """``download.proxy``: the proxy sees the target, so the target is checked before handing it over."""

    def proxy_open(self, req, proxy, type):
        _refusal(req.full_url, "proxied url", unresolvable_ok=False)  # unchecked names never go out
        return super().proxy_open(req, proxy, type)


def guarded_opener(proxy: str = "") -> urllib.request.OpenerDirector:
    """An opener for http and https only (no FTP, file or data handler; no environment proxies).

    Args:
        proxy: ``http://host:port`` of a proxy for every request, or empty for direct connections.
    """
    opener = urllib.request.OpenerDirector()
    handlers = [_HTTP(), _HTTPS(), _GuardedRedirect(), urllib.request.HTTPDefaultErrorHandler(),
                urllib.request.HTTPErrorProcessor(), urllib.request.UnknownHandler()]
    if proxy:
        handlers.append(_GuardedProxy({"http": proxy, "https": proxy}))
    for handler in handlers:
        opener.add_handler(handler)
    opener.addheaders = [("Accept-Encoding", "gzip, deflate")]
    return opener


def install(policy: UrlPolicy, deadline: float, max_bytes: int, proxy: str = "") -> None:
    """Make ``urllib.request.urlopen`` (used by img2dataset) go through the guarded handlers.

    Args:
        policy: which addresses may be reached.
        deadline: seconds allowed for a whole response body (a slow drip cannot hold a thread).
        max_bytes: largest body accepted (before and after gzip decoding).
        proxy: ``http://host:port`` of ``download.proxy``, or empty (environment proxies are ignored).
    """
    parts = urllib.parse.urlsplit(proxy) if proxy else None
    with _lock:
        _config.update(policy=policy, deadline=float(deadline), max_bytes=int(max_bytes),
                       proxy_at=(parts.hostname, parts.port) if parts else None)
        urllib.request.install_opener(guarded_opener(proxy))
