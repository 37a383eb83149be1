"""Stream ``OUT/train/`` shards into batches: rank × worker split, determinism, resumable position.

The generic part of the training input: a task supplies a per-sample ``transform(row, rng)`` and a
``collate(samples)``; :class:`ShardStream` does the rest. Every epoch the shards are cut into
*units* (a row range of one shard; a shard is split into several units only when there are fewer
shards than readers), the units are permuted with ``(seed, epoch)`` and dealt round-robin to the
``world_size × num_workers`` readers, so readers never overlap and together cover every row once.
Rows inside a unit are permuted with ``(seed, epoch, unit)`` and each sample's randomness comes
from ``(seed, epoch, unit, row)``: the stream does not depend on timing, only on the seed.

Batches are assembled inside the worker and carry ``_position`` (the reader and the position of
its next row). :class:`StreamLoader` records the positions of the batches actually consumed, so
``state_dict()`` taken after step *n* resumes exactly at batch *n + 1*, whatever was prefetched.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from regionset.common.shard_names import STATE_DIR, shard_id
from regionset.common.storage import RemotePath, arrow_source, as_path, is_remote
from regionset.models.clip_registry import CLIP_MEAN, CLIP_STD
from regionset.schemas.tables import TRAIN
from regionset.training.distributed import decide_on_rank0, rank_world
from regionset.training.shard_view import ShardList

PACK_STEP = "pack"  # the step that writes ``train/`` (its markers commit the shards on object stores)

POSITION_KEY = "_position"


def list_shards(train_dir: str) -> list[str]:
    """Sorted ``part-*.parquet`` files of a train folder (``OUT`` or ``OUT/train``; a local path or URL).

    On an object store (``s3://…``) a build's shards count only with their ``pack`` completion marker
    (the marker is the commit there): objects a killed writer left are never read.

    Args:
        train_dir: the output folder of a build or its ``train`` sub-folder.
    """
    if is_remote(train_dir):
        return _remote_shards(as_path(train_dir))
    sub = os.path.join(train_dir, TRAIN)
    folder = sub if os.path.isdir(sub) else train_dir
    shards = sorted(
        os.path.join(folder, f) for f in os.listdir(folder) if shard_id(f) is not None
    )
    if not shards:
        raise FileNotFoundError(f"no part-*.parquet shards in {folder}")
    return shards


def _remote_shards(root: RemotePath) -> list[str]:
    """One listing per folder: the train shards under ``root`` (or ``root/train``) that are committed."""
    folder, out = root / TRAIN, root
    names = {p.name for p in folder.iterdir()}
    if not names:
        folder, out, names = root, root.parent, {p.name for p in root.iterdir()}
    shards = sorted(n for n in names if shard_id(n) is not None)
    marked = {p.name.replace(".json", ".parquet") for p in (out / STATE_DIR / PACK_STEP).iterdir()}
    if marked:
        shards = [n for n in shards if n in marked]
    if not shards:
        raise FileNotFoundError(f"no part-*.parquet shards in {folder}")
    return [str(folder / n) for n in shards]


def shard_view(train_dir: str) -> ShardList:
    """The shards of ``train_dir`` and their rows: read by rank 0 once, broadcast to every rank.

    Args:
        train_dir: ``OUT`` or ``OUT/train`` (a local path or URL).
    """
    def read() -> ShardList:
        paths = list_shards(train_dir)
        return ShardList(paths, [shard_rows(p) for p in paths])

    return decide_on_rank0(read, f"listing the train shards of {train_dir}")


def read_shard(path: str, columns: list[str] | None = None) -> Any:
    """Read one train shard (a local file or an object-store URL) as an Arrow table.

    Args:
        path: the shard's path or URL.
        columns: the columns to read (all by default).
    """
    src, fs = arrow_source(path)
    return pq.read_table(src, columns=columns, filesystem=fs)


def shard_rows(path: str) -> int:
    """Rows of one train shard from its footer (a local file or an object-store URL)."""
    src, fs = arrow_source(path)
    return pq.ParquetFile(fs.open(src, "rb") if fs is not None else src).metadata.num_rows


def decode_image(data: bytes) -> Image.Image:
    """Decode encoded image bytes (JPEG, PNG, WebP) to an RGB PIL image."""
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def letterbox(img: Image.Image, size: int) -> tuple[np.ndarray, float]:
    """Resize the long side to ``size`` and pad bottom/right to a square (boxes just scale).

    Args:
        img: an RGB image.
        size: output side in pixels.

    Returns:
        (uint8 array [size, size, 3], scale applied to pixel coordinates).
    """
    w, h = img.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    out = np.zeros((size, size, 3), np.uint8)
    out[:nh, :nw] = np.asarray(img.resize((nw, nh), Image.BILINEAR))
    return out, scale


def to_tensor(arr: np.ndarray, mean: tuple[float, ...] = CLIP_MEAN, std: tuple[float, ...] = CLIP_STD) -> torch.Tensor:
    """uint8 HWC array -> normalised float CHW tensor."""
    x = torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0)
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


class ShardStream(IterableDataset):
    """Batches of transformed train rows, split over ranks and workers (see module doc).

    Inside a process group the constructor is collective (every rank builds its stream): rank 0
    lists the shards and reads their footers, and broadcasts them (:func:`shard_view`).

    Args:
        train_dir: ``OUT`` or ``OUT/train``.
        transform: ``(row dict, np.random.Generator) -> sample | None`` (None skips the row).
        collate: list of samples -> batch dict.
        batch_size: samples per batch on this rank.
        seed: stream seed.
        rank, world_size: this rank (default: from the process group).
        epochs: stop after this many epochs (None: forever, the training default).
        shuffle: permute units and rows each epoch.
        drop_last: drop a reader's final partial batch when ``epochs`` is set.
        columns: columns to read (None: all).
    """

    def __init__(self, train_dir: str, transform: Callable[[dict, np.random.Generator], Any],
                 collate: Callable[[list], dict], batch_size: int, seed: int = 0, rank: int | None = None,
                 world_size: int | None = None, epochs: int | None = None, shuffle: bool = True,
                 drop_last: bool = False, columns: list[str] | None = None):
        super().__init__()
        self.use_view(shard_view(train_dir))
        r, w = rank_world()
        self.rank, self.world_size = (r if rank is None else rank), (w if world_size is None else world_size)
        self.transform, self.collate, self.batch_size = transform, collate, batch_size
        self.seed, self.epochs, self.shuffle, self.drop_last, self.columns = seed, epochs, shuffle, drop_last, columns
        self.start_positions: dict[int, dict[str, int]] = {}

    join_epochs: list[int] | None = None  # per shard: the first epoch it is read in (None: all from 0)

    def use_view(self, view: ShardList) -> None:
        """Read these shards, in this order (a resumed run's reconciled list)."""
        self.shards, self.rows, self.join_epochs = list(view.paths), list(view.rows), list(view.join_epochs)

    def view(self) -> ShardList:
        """The shards this stream reads, in order, with their rows and join epochs."""
        return ShardList(list(self.shards), list(self.rows), list(self.join_epochs or [0] * len(self.shards)))

    def units(self, readers: int, epoch: int = 0) -> list[tuple[int, int, int]]:
        """(shard index, first row, end row) pieces of ``epoch``'s shards; at least ``readers`` of them."""
        joins = self.join_epochs or [0] * len(self.shards)
        active = [i for i in range(len(self.shards)) if joins[i] <= epoch]
        pieces = max(1, math.ceil(readers / max(1, len(active))))
        out = []
        for i in active:
            n = self.rows[i]
            bounds = np.linspace(0, n, pieces + 1).round().astype(int)
            out += [(i, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        return out

    def _reader(self) -> tuple[int, int, int]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        return wid, self.rank * nw + wid, self.world_size * nw

    def _rows(self, reader: int, readers: int, start: dict[str, int]) -> Iterator[tuple[dict, np.random.Generator, dict]]:
        epoch = start.get("epoch", 0)
        while self.epochs is None or epoch < self.epochs:
            units = self.units(readers, epoch)
            order = np.random.default_rng([self.seed, epoch]).permutation(len(units)) if self.shuffle \
                else np.arange(len(units))
            mine = order[reader::readers]
            first_unit = start.get("unit", 0) if epoch == start.get("epoch", 0) else 0
            produced = 0
            for ui in range(first_unit, len(mine)):
                uid = int(mine[ui])
                shard, a, b = units[uid]
                if b <= a:
                    continue
                table = read_shard(self.shards[shard], columns=self.columns).slice(a, b - a)
                rows = table.to_pylist()
                perm = np.random.default_rng([self.seed, epoch, uid]).permutation(len(rows)) if self.shuffle \
                    else np.arange(len(rows))
                first_row = start.get("row", 0) if (epoch == start.get("epoch", 0) and ui == first_unit) else 0
                for ri in range(first_row, len(rows)):
                    nxt = {"epoch": epoch, "unit": ui, "row": ri + 1}
                    if ri + 1 == len(rows):
                        nxt = {"epoch": epoch, "unit": ui + 1, "row": 0}
                    produced += 1
                    yield rows[perm[ri]], np.random.default_rng([self.seed, epoch, uid, int(perm[ri])]), nxt
            epoch += 1
            if produced == 0 and self.epochs is None and first_unit == 0:
                return  # this reader has no rows at all: stop instead of spinning forever

    def __iter__(self) -> Iterator[dict]:
        wid, reader, readers = self._reader()
        start = self.start_positions.get(wid, {})
        samples, pos = [], start
        for row, rng, nxt in self._rows(reader, readers, start):
            pos = nxt
            sample = self.transform(row, rng)
            if sample is None:  # the transform rejected the row (e.g. undecodable image)
                continue
            samples.append(sample)
            if len(samples) == self.batch_size:
                yield self._batch(samples, wid, pos)
                samples = []
        if samples and not self.drop_last:
            yield self._batch(samples, wid, pos)

    def _batch(self, samples: list, wid: int, pos: dict[str, int]) -> dict:
        batch = self.collate(samples)
        batch[POSITION_KEY] = (wid, dict(pos))
        return batch


class StreamLoader:
    """A DataLoader over a :class:`ShardStream` that knows the position of what was consumed.

    Args:
        dataset: the stream (batches are built in the workers).
        num_workers: DataLoader worker processes (0: in-process).
        pin_memory: pin batches for faster host->GPU copies.
        prefetch_factor: batches prefetched per worker.
    """

    def __init__(self, dataset: ShardStream, num_workers: int = 2, pin_memory: bool = False,
                 prefetch_factor: int = 2):
        self.dataset, self.num_workers = dataset, num_workers
        self.pin_memory, self.prefetch_factor = pin_memory, prefetch_factor
        self.positions: dict[int, dict[str, int]] = {}

    def __iter__(self) -> Iterator[dict]:
        self.dataset.start_positions = dict(self.positions)
        kw = {"prefetch_factor": self.prefetch_factor, "persistent_workers": False} if self.num_workers else {}
        # its own generator: making the loader's base seed must not draw from the global RNG, whose
        # state a checkpoint restores (a resumed run then draws what an uninterrupted one draws)
        seeds = torch.Generator().manual_seed(int(self.dataset.seed))
        loader = DataLoader(self.dataset, batch_size=None, num_workers=self.num_workers,
                            pin_memory=self.pin_memory, generator=seeds, **kw)
        for batch in loader:
            wid, pos = batch.pop(POSITION_KEY)
            self.positions[int(wid)] = {k: int(v) for k, v in pos.items()}
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """JSON-able position of the consumed stream (per worker of this rank)."""
        return {"num_workers": self.num_workers, "rank": self.dataset.rank,
                "world_size": self.dataset.world_size, "seed": self.dataset.seed,
                "positions": {str(k): v for k, v in self.positions.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`; the worker and world layout must be the same."""
        for key in ("num_workers", "world_size"):
            mine = self.num_workers if key == "num_workers" else self.dataset.world_size
            if int(state[key]) != mine:
                raise ValueError(f"cannot resume the data stream: saved {key}={state[key]}, now {mine}")
        self.positions = {int(k): dict(v) for k, v in state["positions"].items()}
