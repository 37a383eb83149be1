"""download: the URL shard -> the ``images`` ledger, with img2dataset doing the fetching and resizing.

img2dataset is used as a library: its ``Downloader`` (thread pool, retries, X-Robots-Tag handling,
hashing) and ``Resizer`` run in-process on one shard, and an in-memory sample writer hands the rows
back as an Arrow table instead of writing files. Every input URL yields exactly one ledger row.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import math
import os
import tempfile
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from regionset.common.typed_config import ConfigError
from regionset.schemas import IMAGES, INPUT, images_schema
from regionset.schemas.tables import STATUS_REFUSED
from regionset.stages.base import Resources, Stage
from regionset.stages.download import http_guard
from regionset.stages.download.image_check import ImageRejected, check_image
from regionset.stages.download.url_guard import UrlPolicy, check_url, normalize_url

_SOURCE_KEY = "source_key"


@dataclass(frozen=True)
class DownloadConfig:
    """How images are fetched and stored.

    Args:
        image_size: target size of the resize (shortest edge for ``keep_ratio``).
        resize_mode: img2dataset resize mode; ``keep_ratio`` keeps the aspect ratio.
        resize_only_if_bigger: never upscale (RICE wants shortest edge >= 336 kept as is).
        min_image_size: smaller images (shortest edge, original pixels) fail with "image too small".
        max_image_area: larger images (original pixels) fail with "image area too large".
        thread_count: download threads per worker.
        timeout: socket timeout in seconds.
        retries: extra attempts per URL.
        encode_format: stored format (jpg, png, webp).
        encode_quality: encoder quality.
        allow_loopback: allow URLs resolving to 127.0.0.0/8 or ::1 (tests, the demo).
        allow_private: allow every private range (trusted internal mirrors only).
        deny_networks: networks (CIDR) refused whatever ``allow_*`` says, e.g. ``["10.1.0.0/16"]``.
        proxy: ``http://host:port`` of an HTTP proxy for every fetch; empty = direct connections.
            Environment proxies (``http_proxy``...) are ignored. With a proxy the target URL is
            checked before it is handed over (the proxy resolves it again; see RELIABILITY.md).
        disallowed_header_directives: X-Robots-Tag directives that forbid use.
        deadline: seconds allowed for a whole response body (stops slow drips).
        max_bytes: largest response body accepted, before and after gzip decoding.
        keep_original: also store the downloaded bytes (column ``original``) of images that were
            resized, for OCR at full resolution (``ocr.use_original``); costs the original's bytes.
    """

    image_size: int = 512
    resize_mode: Literal["no", "keep_ratio", "keep_ratio_largest", "center_crop", "border"] = "keep_ratio"
    resize_only_if_bigger: bool = True
    min_image_size: int = 0
    max_image_area: float = 89_478_485.0
    thread_count: int = 16
    timeout: float = 10.0
    retries: int = 0
    encode_format: Literal["jpg", "png", "webp"] = "jpg"
    encode_quality: int = 95
    allow_loopback: bool = False
    allow_private: bool = False
    deny_networks: tuple[str, ...] = ()
    proxy: str = ""
    disallowed_header_directives: tuple[str, ...] = ("noai", "noimageai", "noindex", "noimageindex")
    deadline: float = 30.0
    max_bytes: int = 64 << 20
    keep_original: bool = False
    resources: Resources = Resources()

    def check(self) -> None:
        """Raise ConfigError naming the key for a network setting that cannot work."""
        for net in self.deny_networks:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as err:
                raise ConfigError(f"download.deny_networks: {err}") from None
        if self.proxy:
            try:
                p = urllib.parse.urlsplit(self.proxy)
                ok = p.scheme in ("http", "https") and p.hostname and p.port
            except ValueError:
                ok = False
            if not ok:
                raise ConfigError(f"download.proxy: expected http://host:port, got {self.proxy!r}")


class _CheckedResizer:
    """img2dataset's Resizer behind ``check_image`` (bombs, truncation, non-images, EXIF, odd modes)."""

    def __init__(self, resizer, max_pixels: float, keep_original: bool = False) -> None:
        self.resizer, self.max_pixels, self.keep_original = resizer, max_pixels, keep_original
        self.originals: dict[str, bytes] = {}  # sha256 of the downloaded bytes -> checked bytes

    def __call__(self, img_stream, blurring_bbox_list=None):
        raw = img_stream.read()
        try:
            data = check_image(raw, self.max_pixels)
        except ImageRejected as err:
            return None, None, None, None, None, str(err)
        out = self.resizer(io.BytesIO(data), blurring_bbox_list)
        if self.keep_original and out[0] is not None and (out[1], out[2]) != (out[3], out[4]):
            self.originals[hashlib.sha256(raw).hexdigest()] = data  # img2dataset hashes the same bytes
        return out


def _ledger_writer(sink: list[dict[str, Any]]) -> type:
    """An img2dataset ``sample_writer_class`` that appends rows to ``sink`` instead of writing files."""

    class LedgerWriter:
        def __init__(self, shard_id, output_folder, save_caption, oom_shard_count, schema, encode_format):
            pass

        def write(self, img_str: bytes | None, key: str, caption: str | None, meta: dict[str, Any]) -> None:
            sink.append({**meta, "jpg": img_str})

        def close(self) -> None:
            pass

    return LedgerWriter


class DownloadStage(Stage):
    """Fetch, validate, resize and store every URL of a shard."""

    name = "download"
    inputs = (INPUT,)
    output = IMAGES
    table = IMAGES
    # Small row groups: readers that show a few images (report, training lookups) read ~128 images,
    # not a whole shard of bytes (measured: gallery 3.4 s -> 1.9 s on a 1M-region catalog, +6 % disk).
    row_group_rows = 128

    def setup(self) -> None:
        os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
        from img2dataset.resizer import Resizer

        c = self.config
        self._policy = UrlPolicy(allow_loopback=c.allow_loopback, allow_private=c.allow_private,
                                 deny=tuple(c.deny_networks))
        http_guard.install(self._policy, c.deadline, c.max_bytes, c.proxy)
        self._resizer = _CheckedResizer(Resizer(
            image_size=c.image_size,
            resize_mode=c.resize_mode,
            resize_only_if_bigger=c.resize_only_if_bigger,
            encode_format=c.encode_format,
            encode_quality=c.encode_quality,
            min_image_size=c.min_image_size,
            max_image_area=c.max_image_area,
        ), c.max_image_area, c.keep_original)

    def _downloader(self, tmp: str, n: int, sink: list[dict[str, Any]]):
        from img2dataset.downloader import Downloader

        c = self.config
        return Downloader(
            sample_writer_class=_ledger_writer(sink),
            resizer=self._resizer,
            thread_count=c.thread_count,
            save_caption=True,
            extract_exif=False,
            output_folder=tmp,
            column_list=["url", "caption", _SOURCE_KEY],
            timeout=c.timeout,
            number_sample_per_shard=max(n, 2),
            oom_shard_count=5,
            compute_hash="sha256",
            verify_hash_type=None,
            encode_format=c.encode_format,
            retries=c.retries,
            user_agent_token="regionset",
            disallowed_header_directives=list(c.disallowed_header_directives),
        )

    def process(self, table: pa.Table) -> pa.Table:
        keys = table.column("key").to_pylist()
        urls = table.column("url").to_pylist()
        captions = table.column("caption").to_pylist()
        refused: list[dict[str, Any]] = []
        todo = {"url": [], "caption": [], _SOURCE_KEY: []}
        for key, url, caption in zip(keys, urls, captions):
            reason = check_url(url, self._policy)
            if reason is None:
                todo["url"].append(normalize_url(url))
                todo["caption"].append(caption)
                todo[_SOURCE_KEY].append(key)
            else:
                refused.append({"key": key, "url": url, "caption": caption, "status": STATUS_REFUSED,
                                "error_message": reason})
        fetched = self._fetch(todo) if todo["url"] else []
        original = dict(zip(keys, urls))
        for r in fetched:
            r["url"] = original[r["key"]]  # the ledger keeps the URL as given
            msg = r.get("error_message") or ""
            if "refused: " in msg:  # a redirect hop to a refused address
                r["status"], r["error_message"] = STATUS_REFUSED, msg[msg.index("refused: "):].rstrip(">")
        rows = fetched + refused
        self.counters.update(ledger_counters([r["status"] for r in rows], [r.get("error_message") for r in rows]))
        by_key = {r["key"]: r for r in rows}
        if len(by_key) != len(keys):
            missing = sorted(set(keys) - set(by_key))
            for k in missing:  # img2dataset swallowed a row (it logs and continues): still one row per URL
                i = keys.index(k)
                by_key[k] = {"key": k, "url": urls[i], "caption": captions[i], "status": "failed_to_download",
                             "error_message": "internal: row lost by downloader"}
        ordered = [by_key[k] for k in keys]
        cols = {f.name: [r.get(f.name) for r in ordered] for f in images_schema()}
        return pa.Table.from_pydict(cols, schema=images_schema())

    def _fetch(self, todo: dict[str, list]) -> list[dict[str, Any]]:
        n = len(todo["url"])
        with tempfile.TemporaryDirectory(prefix="regionset-dl-") as tmp:
            shard_file = Path(tmp) / "input.arrow"
            src = pa.Table.from_pydict(todo, schema=pa.schema([
                ("url", pa.string()), ("caption", pa.string()), (_SOURCE_KEY, pa.string())]))
            with pa.OSFile(str(shard_file), "wb") as f, pa.ipc.new_file(f, src.schema) as w:
                w.write_table(src)
            rows: list[dict[str, Any]] = []
            self._downloader(tmp, n, rows).download_shard((0, str(shard_file)))
        out = []
        for r in rows:
            out.append({
                "key": r[_SOURCE_KEY], "url": r["url"], "caption": r["caption"], "status": r["status"],
                "error_message": r.get("error_message"), "width": r.get("width"), "height": r.get("height"),
                "original_width": r.get("original_width"), "original_height": r.get("original_height"),
                "sha256": r.get("sha256"), "jpg": r.get("jpg"),
                "original": self._resizer.originals.pop(r.get("sha256") or "", None),
            })
        self._resizer.originals.clear()
        return out


def error_reason(message: str) -> str:
    """Collapse an error message to a short reason for counters (hosts, sizes and numbers dropped,
    HTTP status codes kept)."""
    text = message.split(":")[0] if message.startswith("refused") else message
    text = text.split(" (")[0]
    words = [w for w in text.split() if not any(ch.isdigit() for ch in w) or (len(w) == 4 and w[:3].isdigit())
             or (len(w) == 3 and w.isdigit())]
    return " ".join(words).rstrip(":")[:60] or "error"


def ledger_counters(statuses: list[str], errors: list[str | None]) -> Counter:
    """``status:<status>`` and ``error:<reason>`` counts of ledger rows."""
    c: Counter = Counter(f"status:{s}" for s in statuses)
    c.update(f"error:{error_reason(e)}" for e in errors if e)
    return c


def oom_sample_per_shard(shard_size: int) -> int:
    """Digits of the in-shard index in an img2dataset key."""
    return max(1, math.ceil(math.log10(max(shard_size, 2))))


def make_key(shard: int, index: int, shard_size: int) -> str:
    """img2dataset's key format: 5-digit shard id followed by the zero-padded index in the shard."""
    return f"{shard:05d}{index:0{oom_sample_per_shard(shard_size)}d}"

