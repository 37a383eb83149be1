"""Files of a training run on any storage the pipeline takes (a local folder or ``s3://…``).

Everything a run writes under ``loop.out_dir`` goes through :mod:`regionset.common.storage` and
:func:`regionset.common.files.write_atomic`: a local path stays a local folder, a URL becomes
objects (one PUT each), so ``loop.out_dir=s3://bucket/run`` never creates a local folder named
``s3:``. Tensors are serialised in memory and loaded back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch

from regionset.common.files import write_atomic
from regionset.common.storage import RemotePath, as_path


def run_path(out_dir: str | os.PathLike | RemotePath, *parts: str) -> Path | RemotePath:
    """``out_dir/part/...`` as a local ``Path`` or a ``RemotePath``.

    Args:
        out_dir: the run folder or prefix.
        parts: names below it.
    """
    p = as_path(out_dir)
    for part in parts:
        p = p / part
    return p


def put_bytes(path: Path | RemotePath, data: bytes) -> str:
    """Write ``data`` whole (temp + rename locally, one PUT remotely); returns its sha256."""
    write_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def put_torch(path: Path | RemotePath, obj: Any) -> str:
    """``torch.save`` ``obj`` to ``path`` whole; returns the bytes' sha256."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return put_bytes(path, buf.getvalue())


def get_torch(path: Path | RemotePath) -> Any:
    """Load a tensor file written by :func:`put_torch` (``weights_only=True``, on the CPU)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist") from None
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def read_text_or_none(path: Path | RemotePath) -> str | None:
    """The text of ``path``, or None when it is missing."""
    try:
        return path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None


def children(folder: Path | RemotePath) -> list[str]:
    """Names directly under ``folder`` (nothing for a missing folder)."""
    try:
        return sorted(p.name for p in folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def append_lines(path: Path | RemotePath, lines: list[str]) -> None:
    """Append text lines to ``path``: an append locally, a rewrite of the whole object remotely.

    Objects cannot be appended to, so a remote log is read and written back whole; the loop calls
    this at checkpoints and at the end only, not per step.
    """
    if not lines:
        return
    text = "".join(line + "\n" for line in lines)
    if isinstance(path, RemotePath):
        path.write_text((read_text_or_none(path) or "") + text)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(text)


def upload_folder(local: str | os.PathLike, dest: Path | RemotePath) -> None:
    """Copy every file of a local folder to ``dest`` (a folder or prefix), keeping relative names."""
    root = Path(local)
    for f in sorted(root.rglob("*")):
        if f.is_file():
            write_atomic(run_path(dest, *f.relative_to(root).parts), f.read_bytes())
