"""The hostile corpus: named cases served by the loopback server, each with its expected ledger status.

Used by the reliability tests; every builder returns (url, expected_status, expected_error_substring).
"""

from __future__ import annotations

import io
import socket
import struct
import threading
import urllib.parse
import zlib

import numpy as np
from PIL import Image

from tests.conftest import make_jpeg, make_png


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _photo(w: int = 480, h: int = 360) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([(x * 255 // w), (y * 255 // h), ((x + y) % 255)], axis=-1).astype(np.uint8)
    return Image.fromarray(arr)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 60000, height: int = 60000) -> bytes:
    """A tiny PNG whose header claims width × height pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def exif_rotated_jpeg() -> bytes:
    """A 480×360 JPEG with EXIF orientation 6 (display rotated 90° clockwise: 360×480 upright)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(_photo(480, 360), "JPEG", exif=exif.tobytes(), quality=90)


FORBIDDEN_HOST = "127.0.0.2"  # a second loopback address; tests refuse it with download.deny_networks


class ConnectionRecorder:
    """A TCP listener on ``FORBIDDEN_HOST`` that counts the connections it accepts (and answers none)."""

    def __init__(self) -> None:
        self.sock = socket.create_server((FORBIDDEN_HOST, 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        """Stop listening."""
        self.sock.close()


def redirect_cases(server, port: int) -> dict[str, tuple[str, str, str]]:
    """301/302/303/307/308 to every forbidden scheme, and to http on a forbidden address (port: a recorder)."""
    at = f"{FORBIDDEN_HOST}:{port}"
    targets = {
        "ftp": (f"ftp://{at}/x.jpg", "scheme"), "file": ("file:///etc/passwd", "scheme"),
        "data": ("data:image/png;base64,iVBORw0KGgo=", "scheme"), "gopher": (f"gopher://{at}/1x", "scheme"),
        "jar": (f"jar:http://{at}/a.jar!/x.jpg", "scheme"), "upper_http": (f"HTTP://{at}/x.jpg", "denied"),
        "http_forbidden": (f"http://{at}/x.jpg", "denied"),
    }
    cases = {}
    for code in (301, 302, 303, 307, 308):
        for name, (target, err) in targets.items():
            url = server.url(f"redirect-to?code={code}&url={urllib.parse.quote(target, safe='')}")
            cases[f"redirect_{code}_to_{name}"] = (url, "refused", err)
    return cases


def hostile_cases(server, ipv6_server=None) -> dict[str, tuple[str, str, str]]:
    """name -> (url, expected status, substring expected in error_message ('' = no error))."""
    s = server
    photo = _photo()
    jpeg = _encode(photo, "JPEG", quality=90)
    corrupt_png = bytearray(make_png(200, 200))
    corrupt_png[60:90] = b"\x00" * 30
    frames = [_photo(200, 150).rotate(a) for a in (0, 90, 180)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    palette = photo.convert("P", palette=Image.ADAPTIVE, colors=32)
    palette.info["transparency"] = 0
    sixteen = Image.fromarray(np.arange(300 * 200, dtype=np.uint16).reshape(200, 300) * 17)
    s.add("robots.jpg", jpeg, headers={"X-Robots-Tag": "noai"})
    s.add("page.html", b"<!DOCTYPE html><html><body>hello</body></html>", "text/html")
    s.add("gz.jpg", jpeg)
    s.add("target.jpg", jpeg)
    cases = {
        "ok_jpeg": (s.add("ok.jpg", jpeg), "success", ""),
        "ok_png": (s.add("ok.png", make_png(400, 300)), "success", ""),
        "http_404": (s.url("status/404"), "failed_to_download", "404"),
        "http_403": (s.url("status/403"), "failed_to_download", "403"),
        "http_500": (s.url("status/500"), "failed_to_download", "500"),
        "http_429_retry_after": (s.url("status/429"), "failed_to_download", "429"),
        "connection_reset": (s.url("reset"), "failed_to_download", ""),
        "slow_drip": (s.url("slow/8"), "failed_to_download", "timed out"),
        "redirect_ok": (s.url("redirect/2?to=target.jpg"), "success", ""),
        "redirect_loop": (s.url("loop"), "failed_to_download", "redirect"),
        "redirect_to_private": (s.url("redirect-to?url=http://10.11.12.13/x.jpg"), "refused", "private"),
        "redirect_to_metadata": (s.url("redirect-to?url=http://169.254.169.254/latest/"), "refused", "link-local"),
        "truncated_jpeg": (s.add("trunc.jpg", jpeg[: len(jpeg) // 2]), "failed_to_resize", "truncated"),
        "corrupt_png": (s.add("corrupt.png", bytes(corrupt_png)), "failed_to_resize", ""),
        "webp": (s.add("img.webp", _encode(photo, "WEBP", quality=80)), "success", ""),
        "gif_animated": (s.add("anim.gif", gif.getvalue()), "success", ""),
        "png_16bit": (s.add("deep.png", _encode(sixteen, "PNG")), "success", ""),
        "png_palette_transparency": (s.add("pal.png", _encode(palette, "PNG")), "success", ""),
        "cmyk_jpeg": (s.add("cmyk.jpg", _encode(photo.convert("CMYK"), "JPEG")), "success", ""),
        "exif_rotated_jpeg": (s.add("rot.jpg", exif_rotated_jpeg()), "success", ""),
        "one_pixel": (s.add("one.png", make_png(1, 1)), "success", ""),
        "decompression_bomb": (s.add("bomb.png", bomb_png()), "failed_to_resize", "decompression bomb"),
        "zero_bytes": (s.add("empty.jpg", b""), "failed_to_resize", "empty"),
        "html_as_jpeg": (s.url("as-jpeg/page.html"), "failed_to_resize", "html"),
        "svg": (s.add("vec.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'),
                "failed_to_resize", "svg"),
        "text_plain": (s.add("notes.txt", b"just some words, not pixels\n"), "failed_to_resize", "text"),
        "gzip_encoded": (s.url("gzip/gz.jpg"), "success", ""),
        "duplicate_url_1": (s.add("dup.jpg", make_jpeg(320, 240)), "success", ""),
        "duplicate_url_2": (s.url("files/dup.jpg"), "success", ""),
        "non_ascii_url": (s.url("files/") + "bild-äöü-猫.jpg", "success", ""),
        "url_with_spaces": (s.url("files/") + "my photo.jpg", "success", ""),
        "x_robots_noai": (s.url("files/robots.jpg"), "failed_to_download", "X-Robots-Tag"),
        "file_url": ("file:///etc/passwd", "refused", "scheme"),
        "ftp_url": ("ftp://127.0.0.1/pub/a.jpg", "refused", "scheme"),
        "data_url": ("data:image/png;base64,iVBORw0KGgo=", "refused", "scheme"),
        "ipv6_private_literal": ("http://[fd00::1]/a.jpg", "refused", "private"),
        "very_long_url": (s.url("files/ok.jpg?" + "a" * 5000), "refused", "longer than"),
        "empty_url": ("", "refused", "empty"),
        "no_host": ("http:///a.jpg", "refused", "no host"),
    }
    s.add("bild-äöü-猫.jpg", make_jpeg(300, 300))
    s.add("my photo.jpg", make_jpeg(300, 300))
    if ipv6_server is not None:
        cases["ipv6_literal_loopback"] = (ipv6_server.add("v6.jpg", jpeg), "success", "")
    return cases
