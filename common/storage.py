"""One filesystem layer: a local path or an fsspec URL (``s3://``, ``gs://``, ``abfs://``, ``hdfs://``).

``as_path(p)`` resolves a config value once: a local path (or ``file://`` URL) stays a ``pathlib.Path``
(so local behaviour is unchanged), any other URL becomes a ``RemotePath`` — a small pathlib-like
object over an fsspec filesystem. A ``RemotePath`` pickles as its URL only: each process (a Ray or
Spark worker, a training data-loader worker) builds its own client from its environment
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, profiles, ...), so credentials never travel in a
pickle, a config, a marker or a log. See README "Object storage".
"""

from __future__ import annotations

import fnmatch
import io
import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

from regionset.common.store_retry import count_library_retries, put_verified, retrying

LOCAL_SCHEMES = ("", "file", "local")
# listing fields that change whenever an object is rewritten with other bytes (S3, Azure, GCS)
_VERSION_KEYS = ("ETag", "etag", "generation", "md5Hash", "content_md5")


def scheme_of(p: str | os.PathLike) -> str:
    """The URL scheme of ``p`` (``''`` for a plain path).

    Args:
        p: a path or URL.
    """
    s = str(p)
    return s.split("://", 1)[0].lower() if "://" in s else ""


def is_remote(p: Any) -> bool:
    """True for a ``RemotePath`` or a URL whose scheme is not a local one.

    Args:
        p: a path, URL or ``RemotePath``.
    """
    if isinstance(p, RemotePath):
        return True
    if isinstance(p, str):
        return scheme_of(p) not in LOCAL_SCHEMES
    flag = getattr(p, "is_remote", None)  # a path-like object that knows (pipelines' ``Output``)
    return flag if isinstance(flag, bool) else False


def as_path(p: str | os.PathLike | RemotePath) -> Path | RemotePath:
    """Resolve a config path once: a ``Path`` for local paths and ``file://`` URLs, else a ``RemotePath``.

    Args:
        p: a path, URL or already-resolved path.
    """
    if isinstance(p, RemotePath | Path):
        return p
    root = getattr(p, "root", None)  # an object over a resolved root (pipelines' ``Output``)
    if isinstance(root, RemotePath | Path):
        return root
    s = os.fspath(p)
    scheme = scheme_of(s)
    if scheme in ("file", "local"):
        return Path(s.split("://", 1)[1])
    if scheme:
        return RemotePath(s)
    return Path(s)


def _client_options(protocol: str) -> dict[str, Any]:
    """Non-secret client options from the environment (credentials stay with the cloud SDK)."""
    if protocol in ("s3", "s3a"):
        opts: dict[str, Any] = {"use_listings_cache": False}
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            opts["client_kwargs"] = {"endpoint_url": endpoint}
        return opts
    return {"use_listings_cache": False}


@lru_cache(maxsize=16)
def _filesystem(protocol: str, env_key: tuple, pid: int) -> Any:
    import fsspec

    opts = _client_options(protocol)
    if protocol == "s3":  # botocore's own retries are counted too (common/store_retry.py)
        from aiobotocore.session import AioSession

        opts["session"] = count_library_retries(AioSession())
    return fsspec.filesystem(protocol, **opts)


def filesystem(protocol: str) -> Any:
    """This process's fsspec filesystem for ``protocol``, rebuilt when the endpoint/credential env changes.

    Args:
        protocol: ``s3``, ``gs``, ...
    """
    env_key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(("AWS_", "GOOGLE_", "AZURE_"))))
    # per process: a client's event loop does not survive fork (data-loader workers, process pools)
    return _filesystem("s3" if protocol == "s3a" else protocol, env_key, os.getpid())


class _Stat:
    def __init__(self, size: int) -> None:
        self.st_size = size


class RemotePath:
    """A pathlib-like path on an object store (``s3://bucket/prefix/part-00000.parquet``).

    Only what the pipeline needs: joining, names, listing, reading and writing whole objects.
    Folders are implicit (a prefix exists when an object lies under it).

    Args:
        url: ``scheme://bucket/key``.
    """

    def __init__(self, url: str) -> None:
        scheme, rest = url.split("://", 1)
        self.protocol = scheme.lower()
        self.key = rest.strip("/")

    # -- naming ---------------------------------------------------------------------------------
    def __str__(self) -> str:
        return f"{self.protocol}://{self.key}"

    def __repr__(self) -> str:
        return f"RemotePath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __lt__(self, other: RemotePath) -> bool:
        return str(self) < str(other)

    def __reduce__(self) -> tuple:
        return (RemotePath, (str(self),))

    def __truediv__(self, part: str | os.PathLike) -> RemotePath:
        joined = PurePosixPath(self.key, os.fspath(part)).as_posix()
        if ".." in joined.split("/"):
            raise ValueError(f"{part!r} escapes {self}")
        return RemotePath(f"{self.protocol}://{joined}")

    @property
    def name(self) -> str:
        return PurePosixPath(self.key).name

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.key).suffix

    @property
    def stem(self) -> str:
        return PurePosixPath(self.key).stem

    @property
    def parent(self) -> RemotePath:
        return RemotePath(f"{self.protocol}://{PurePosixPath(self.key).parent.as_posix()}")

    def resolve(self) -> RemotePath:
        return self

    def as_posix(self) -> str:
        return str(self)

    def relative_to(self, other: RemotePath) -> PurePosixPath:
        return PurePosixPath(self.key).relative_to(other.key)

    @property
    def fs(self) -> Any:
        """This process's fsspec filesystem for the path's protocol."""
        return filesystem(self.protocol)

    # -- queries --------------------------------------------------------------------------------
    def exists(self) -> bool:
        return bool(retrying(f"HEAD {self}", lambda: self.fs.exists(self.key)))

    def is_file(self) -> bool:
        return bool(retrying(f"HEAD {self}", lambda: self.fs.isfile(self.key)))

    def is_dir(self) -> bool:
        return bool(retrying(f"HEAD {self}", lambda: self.fs.isdir(self.key)))

    def stat(self) -> _Stat:
        return _Stat(int(retrying(f"HEAD {self}", lambda: self.fs.size(self.key))))

    def iterdir(self) -> Iterator[RemotePath]:
        """Children (one paginated listing, no request per object); nothing for a missing prefix."""
        try:
            names = retrying(f"LIST {self}", lambda: self.fs.ls(self.key, detail=False))
        except FileNotFoundError:
            return iter(())
        return iter(sorted(RemotePath(f"{self.protocol}://{n.rstrip('/')}") for n in names
                           if n.rstrip("/") != self.key))

    def versions(self) -> dict[str, str | None]:
        """Name -> version token (S3/Azure ETag, GCS generation; None when the store gives none) of
        every object directly under this prefix, from one paginated listing; empty for a missing prefix."""
        try:
            entries = retrying(f"LIST {self}", lambda: self.fs.ls(self.key, detail=True))
        except FileNotFoundError:
            return {}
        found = {}
        for e in entries:
            if e.get("type") == "directory" or e["name"].rstrip("/") == self.key:
                continue
            token = next((e[k] for k in _VERSION_KEYS if e.get(k) not in (None, "")), None)
            found[PurePosixPath(e["name"]).name] = None if token is None else str(token)
        return found

    def glob(self, pattern: str) -> Iterator[RemotePath]:
        """Objects matching a ``dir/part-*.json``-style pattern, relative to this path."""
        found = retrying(f"LIST {self}", lambda: self.fs.glob(f"{self.key}/{pattern}"))
        return iter(sorted(RemotePath(f"{self.protocol}://{n}") for n in found))

    def rglob(self, pattern: str) -> Iterator[RemotePath]:
        """Every object under this prefix whose name matches ``pattern`` (one recursive listing)."""
        try:
            found = retrying(f"LIST {self}", lambda: self.fs.find(self.key))
        except FileNotFoundError:
            return iter(())
        return iter(sorted(RemotePath(f"{self.protocol}://{n}") for n in found
                           if fnmatch.fnmatch(PurePosixPath(n).name, pattern)))

    # -- reading and writing whole objects (a PUT is atomic: no temp object, no rename) ----------
    def read_bytes(self) -> bytes:
        try:
            # one GET, no HEAD for the size first; a body cut short or failing its checksum is retried
            return retrying(f"GET {self}", lambda: self.fs.cat_file(self.key, max_concurrency=1))
        except FileNotFoundError:
            raise FileNotFoundError(f"{self} does not exist") from None

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> None:
        """One verified PUT (``put_verified``), retried: a truncated object is never left as committed."""
        retrying(f"PUT {self}", lambda: put_verified(self.fs, self.key, data))

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    def create_exclusive(self, data: bytes) -> bool:
        """Create the object only if absent (S3 ``If-None-Match: *``); False when it exists
        (``common/conditional.py``: atomic on S3 and ``memory://``)."""
        from regionset.common.conditional import put_if_absent

        return put_if_absent(self, data) is not None

    def open(self, mode: str = "rb", **kwargs: Any) -> Any:
        if "b" not in mode:
            return io.TextIOWrapper(self.fs.open(self.key, mode.replace("t", "") + "b"), **kwargs)
        return self.fs.open(self.key, mode, **kwargs)

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            retrying(f"DELETE {self}", lambda: self.fs.rm_file(self.key))
        except FileNotFoundError:
            if not missing_ok:
                raise

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Folders are implicit on object stores: nothing to create."""


def worker_out(out: str | os.PathLike | RemotePath) -> str:
    """The output location as a string for a worker: an absolute local path, or the URL as is.

    Args:
        out: the build's output folder or prefix.
    """
    return str(out) if is_remote(out) else str(Path(out).resolve())


def local_absolute(path: str) -> str:
    """``path`` made absolute when it names an existing local file or folder (relative, or with ``~``);
    anything else (empty, a URL, a name, a missing path) as is. Used on the driver before a config
    travels to workers, whose working folder and home differ.

    Args:
        path: a config value that may be a local path.
    """
    if not path or is_remote(path):
        return path
    p = Path(path).expanduser()
    return str(p.resolve()) if p.exists() else path


def arrow_source(path: str | os.PathLike | RemotePath) -> tuple[str, Any]:
    """``(path, filesystem)`` for pyarrow readers: ``(path, None)`` locally, ``(key, fsspec fs)`` remotely.

    Args:
        path: a file path or URL.
    """
    p = as_path(path)
    if isinstance(p, RemotePath):
        return p.key, p.fs
    return os.fspath(p), None
