"""A loopback HTTP server for the demo and the tests: serves files plus named misbehaving routes.

Routes: ``/files/<name>`` serves bytes registered with ``add``; ``/status/<code>`` answers that
code; ``/slow/<seconds>`` drips a body slower than any sane timeout; ``/as-jpeg/<name>`` serves a
registered body with ``Content-Type: image/jpeg`` whatever it is; ``/redirect/<n>`` redirects n
times then to ``/files/<target>`` (``?to=name``); ``/redirect-to?url=U[&code=C]`` redirects to any URL (302 or C);
``/loop`` redirects to itself; ``/reset`` closes the connection without answering; ``/gzip/<name>``
serves a registered body gzip-encoded; ``/flaky/<name>?fail=N`` answers 503 N times, then the file. It binds 127.0.0.1 (or ::1 with ``ipv6=True``) only.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
          ".webp": "image/webp", ".svg": "image/svg+xml", ".html": "text/html", ".txt": "text/plain"}


class _Handler(BaseHTTPRequestHandler):
    server: LoopbackServer  # type: ignore[assignment]
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _send(self, code: int, body: bytes, ctype: str = "application/octet-stream",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        parts = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(parts.path)
        query = urllib.parse.parse_qs(parts.query)
        self.server.hits[path] = self.server.hits.get(path, 0) + 1
        head, _, rest = path.lstrip("/").partition("/")
        files = self.server.files
        if head == "files" and rest in files:
            body, ctype, headers = files[rest]
            return self._send(200, body, ctype, headers)
        if head == "as-jpeg" and rest in files:
            return self._send(200, files[rest][0], "image/jpeg")
        if head == "status" and rest.isdigit():
            extra = {"Retry-After": "1"} if rest in ("429", "503") else {}
            return self._send(int(rest), b"status " + rest.encode(), "text/plain", extra)
        if head == "gzip" and rest in files:
            return self._send(200, gzip.compress(files[rest][0]), files[rest][1], {"Content-Encoding": "gzip"})
        if head == "flaky" and rest in files:  # 503 for the first ?fail=N requests, then the file
            if self.server.hits[path] <= int(query.get("fail", ["1"])[0]):
                return self._send(503, b"try later", "text/plain", {"Retry-After": "1"})
            return self._send(200, files[rest][0], files[rest][1])
        if head == "redirect-to":
            code = int(query.get("code", ["302"])[0])
            return self._send(code, b"", "text/plain", {"Location": query.get("url", ["/"])[0]})
        if head == "slow":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            deadline = time.time() + float(rest or 30)
            try:
                while time.time() < deadline:
                    self.wfile.write(b"\xff")
                    self.wfile.flush()
                    time.sleep(0.5)
            except OSError:
                pass
            return None
        if head == "redirect":
            n = int(rest or 0)
            target = query.get("to", [""])[0]
            loc = f"/redirect/{n - 1}?to={target}" if n > 0 else f"/files/{target}"
            return self._send(302, b"", "text/plain", {"Location": loc})
        if head == "loop":
            return self._send(302, b"", "text/plain", {"Location": "/loop"})
        if head == "reset":
            self.close_connection = True
            self.connection.shutdown(2)
            return None
        return self._send(404, b"not found", "text/plain")


class LoopbackServer(ThreadingHTTPServer):
    """A threaded HTTP server on 127.0.0.1 (``with LoopbackServer() as s: s.url('files/a.jpg')``)."""

    daemon_threads = True

    def __init__(self, port: int = 0, ipv6: bool = False) -> None:
        if ipv6:
            self.address_family = socket.AF_INET6
        super().__init__(("::1" if ipv6 else "127.0.0.1", port), _Handler)
        self.files: dict[str, tuple[bytes, str, dict[str, str]]] = {}
        self.hits: dict[str, int] = {}
        self._thread: threading.Thread | None = None

    def add(self, name: str, body: bytes, content_type: str | None = None,
            headers: dict[str, str] | None = None) -> str:
        """Register ``body`` under ``/files/<name>``; return its URL."""
        ext = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
        self.files[name] = (body, content_type or _TYPES.get(ext, "application/octet-stream"), headers or {})
        return self.url(f"files/{urllib.parse.quote(name)}")

    def url(self, path: str) -> str:
        """Absolute URL of a path on this server."""
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/{path.lstrip('/')}"

    def start(self) -> LoopbackServer:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self.serve_forever, name="regionset-loopback", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.shutdown()
        self.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
