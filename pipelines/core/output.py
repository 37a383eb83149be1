"""The output of a build: one ``Output``, made once from the config's ``output`` and handed down.

``Output`` resolves the location once (a local path, ``file://`` URL or fsspec URL such as
``s3://bucket/prefix``): a local path becomes absolute at creation (what ``worker_out`` gave workers),
an URL a ``RemotePath``. It knows its root, filesystem, table folders, state folder, shard and marker
paths, the per-stage marker caches (``out.markers(stage)``) and its lock (``out.lock()``).

It pickles as its URL: a Ray, Spark or process-pool worker rebuilds it from the URL, and no cache
(nor any credential) travels with it. ``out / "name"`` gives the root's path (a ``Path`` or a
``RemotePath``), so path code keeps working; ``os.fspath(out)`` works for local outputs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from regionset.common.shard_names import STATE_DIR
from regionset.common.storage import RemotePath, as_path
from regionset.pipelines.core.fence import Fence, arm, armed, disarm
from regionset.pipelines.core.lease import LeaseLock
from regionset.pipelines.core.lock import BuildLock
from regionset.pipelines.core.marker_index import StageMarkers
from regionset.pipelines.core.shards import marker_path, remember_sha256, shard_path

CATALOG_FILE = "catalog.duckdb"  # the output's DuckDB catalog (pipelines/core/catalog.py)


class Output:
    """A build's output folder or object-store prefix, resolved once.

    Args:
        url: a local path, ``file://`` URL or fsspec URL (or an already-resolved ``Path``/``RemotePath``).
    """

    def __init__(self, url: str | os.PathLike | RemotePath) -> None:
        root = as_path(url)  # the one resolution of the output location
        self.root: Path | RemotePath = root if isinstance(root, RemotePath) else Path(root).resolve()
        self.url = str(self.root)
        self.is_remote = isinstance(self.root, RemotePath)
        self._markers: dict[str, StageMarkers] = {}

    @classmethod
    def of(cls, out: Output | str | os.PathLike | RemotePath) -> Output:
        """``out`` itself if it is an ``Output``, else a new one over it.

        Args:
            out: an ``Output``, ``Path``, ``RemotePath`` or string.
        """
        return out if isinstance(out, Output) else cls(out)

    # -- naming ---------------------------------------------------------------------------------
    def __reduce__(self) -> tuple:
        # workers rebuild it from the URL (caches stay in this process) with the commit fence armed
        checker = armed(self.url)
        fence = checker.fence_args() if checker is not None else None
        return (_output_in_worker, (self.url, fence))

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"Output({self.url!r})"

    def __fspath__(self) -> str:
        if self.is_remote:
            raise TypeError(f"{self.url} is an object-store output, not a local path")
        return self.url

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Output):
            return self.url == other.url
        if isinstance(other, Path | RemotePath):
            return self.root == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.url)

    def __truediv__(self, part: str | os.PathLike) -> Path | RemotePath:
        return self.root / part

    def __getattr__(self, name: str) -> Any:
        # path queries (exists, iterdir, glob, name, ...) go to the root; never the private state
        if name.startswith("_") or name == "root":
            raise AttributeError(name)
        return getattr(self.root, name)

    @property
    def fs(self) -> Any:
        """The fsspec filesystem of the output (the local one for a folder)."""
        if self.is_remote:
            return self.root.fs
        import fsspec  # only when asked: local builds never need it

        return fsspec.filesystem("file")

    # -- layout ---------------------------------------------------------------------------------
    def table(self, folder: str) -> Path | RemotePath:
        """A table folder (``images``, ``regions``, ...)."""
        return self.root / folder

    @property
    def state(self) -> Path | RemotePath:
        """``_state/``: markers, run records, the lock."""
        return self.root / STATE_DIR

    def shard(self, folder: str, shard: int) -> Path | RemotePath:
        """One shard file of a table folder (refusing folder names that escape the output)."""
        return shard_path(self.root, folder, shard)

    def marker(self, stage: str, shard: int) -> Path | RemotePath:
        """``_state/<stage>/part-NNNNN.json``."""
        return marker_path(self.root, stage, shard)

    # -- what this process knows of the output ---------------------------------------------------
    def markers(self, stage: str) -> StageMarkers:
        """The stage's marker cache (the same object for the same stage, for this ``Output``)."""
        cache = self._markers.get(stage)
        if cache is None:
            cache = self._markers[stage] = StageMarkers(self.root, stage)
        return cache

    def load_committed(self, producers: dict[str, str]) -> None:
        """At the start of a build: forget what this object knew of earlier builds, and on an object
        store remember the sha256 of every committed shard from its producer's markers (no GET per
        input object when planning).

        Args:
            producers: table folder -> the stage that writes it.
        """
        for cache in self._markers.values():
            cache.forget()
        if not self.is_remote:
            return
        for folder, stage in producers.items():
            index = self.markers(stage).committed()
            for shard in sorted(index.marked()):
                marker = index.get(shard)
                if marker is not None:
                    remember_sha256(self.shard(folder, shard), marker.output_sha256)

    def lock(self, **kwargs: Any) -> BuildLock | LeaseLock:
        """The output's single-writer lock (a lease object on an object store).

        Args:
            kwargs: ``LeaseLock`` options (``lease_seconds``, ``run_id``); a local folder's lock takes
                ``run_id`` only.
        """
        if self.is_remote:
            return LeaseLock(self.root, **kwargs)
        return BuildLock(self.root, run_id=kwargs.get("run_id"))


def _output_in_worker(url: str, fence: tuple[str, str, int] | None) -> Output:
    """Unpickle an ``Output``: arm its commit fence in this process (or disarm one a previous build
    armed here), unless this process holds the lock itself."""
    out = Output(url)
    mine = armed(url)
    if fence is None:
        if isinstance(mine, Fence):
            disarm(url, mine)
    elif mine is None or mine.fence_args() != fence:
        arm(url, Fence(*fence))
    return out

