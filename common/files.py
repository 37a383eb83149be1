"""Whole files through the storage layer (``regionset.common.storage``): one code path for disk and object stores.

- ``write_atomic``: temp file + rename on local disk, one PUT (atomic, no rename) on an object store;
- ``save_npy`` / ``load_npy`` / ``read_npy_rows``: ``.npy`` arrays as whole objects, and a row range
  of one read by offset (a ranged GET remotely, a seek locally: no memory map needed);
- ``remove_tree``: a folder or every object under a prefix.

Groups of files are committed by a completion file written last (README "Object storage"): the
writer deletes the old completion file first, writes the data files under their final names, then
the completion file; readers trust a group only when its completion file exists.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

from regionset.common.storage import RemotePath, as_path
from regionset.common.store_retry import retrying


def write_atomic(path: str | os.PathLike | RemotePath, data: bytes) -> None:
    """Write ``data`` to ``path`` whole: temp + fsync + rename locally, one PUT remotely.

    Args:
        path: a local path or ``RemotePath``.
        data: the file's bytes.
    """
    p = as_path(path)
    if isinstance(p, RemotePath):
        p.write_bytes(data)
        return
    _write_local(p, lambda f: f.write(data))


def _write_local(p: Path, write: Callable[[IO[bytes]], object]) -> None:
    """temp + fsync + rename of a local file whose content ``write`` puts in the open temp file."""
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` in ``.npy`` format."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def save_npy(path: str | os.PathLike | RemotePath, array: np.ndarray) -> None:
    """Write ``array`` as one ``.npy`` file or object (``write_atomic``).

    Args:
        path: where.
        array: the array (no objects: never pickled).
    """
    p = as_path(path)
    if isinstance(p, RemotePath):
        p.write_bytes(npy_bytes(array))
    else:  # straight into the file: no in-memory copy of the array
        _write_local(p, lambda f: np.save(f, array, allow_pickle=False))


def load_npy(path: str | os.PathLike | RemotePath) -> np.ndarray:
    """Read a whole ``.npy`` file or object (one GET remotely).

    Args:
        path: where.
    """
    p = as_path(path)
    if isinstance(p, RemotePath):
        return np.load(io.BytesIO(p.read_bytes()), allow_pickle=False)
    return np.load(p, allow_pickle=False)


def read_range(path: str | os.PathLike | RemotePath, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of a file or object (a seek locally, one ranged GET remotely; shorter at EOF).

    Args:
        path: where.
        start: first byte.
        end: one past the last byte.
    """
    p = as_path(path)
    if isinstance(p, RemotePath):
        return retrying(f"GET {p} [{start}, {end})", lambda: p.fs.cat_file(p.key, start=start, end=end))
    with open(p, "rb") as f:
        f.seek(start)
        return f.read(max(0, end - start))


_HEAD = 4096  # bytes fetched for a .npy header (regionset's are 128); a longer one costs one more read


def read_npy_rows(path: str | os.PathLike | RemotePath, lo: int, hi: int) -> np.ndarray:
    """Rows ``[lo, hi)`` of a C-order ``.npy`` array: its header, then only those rows (two reads).

    Args:
        path: the ``.npy`` file or object.
        lo: first row.
        hi: one past the last row.
    """
    head = read_range(path, 0, _HEAD)
    version = np.lib.format.read_magic(io.BytesIO(head))
    size = 10 + int.from_bytes(head[8:10], "little") if version == (1, 0) else 12 + int.from_bytes(head[8:12], "little")
    if size > len(head):
        head = read_range(path, 0, size)
    f = io.BytesIO(head[:size])
    np.lib.format.read_magic(f)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(f)
    if fortran:
        raise ValueError(f"{path}: Fortran-order arrays are not supported")
    row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    hi = min(hi, shape[0]) if shape else 0
    if hi <= lo:
        return np.zeros((0, *shape[1:]), dtype)
    p = as_path(path)
    if isinstance(p, RemotePath):
        data = read_range(p, size + lo * row, size + hi * row)
        return np.frombuffer(data, dtype).reshape((hi - lo, *shape[1:])).copy()
    rows = np.empty((hi - lo, *shape[1:]), dtype)  # read straight into the array: no bytes copy
    with open(p, "rb") as f:
        f.seek(size + lo * row)
        got = f.readinto(memoryview(rows).cast("B"))
    if got != rows.nbytes:
        raise ValueError(f"{path}: truncated .npy ({got} of {rows.nbytes} bytes of rows {lo}..{hi})")
    return rows


def remove_tree(path: str | os.PathLike | RemotePath) -> None:
    """Delete a local folder or every object under a prefix (nothing when absent).

    Args:
        path: the folder or prefix.
    """
    p = as_path(path)
    if isinstance(p, RemotePath):
        try:
            p.fs.rm(p.key, recursive=True)
        except FileNotFoundError:
            pass
        return
    shutil.rmtree(p, ignore_errors=True)
