"""pack: images + regions + labels -> ``train``, one training-ready row per image.

Each row carries the image bytes, caption, size and a list of the image's *labelled* regions (box in
pixels of the stored image, source, ``class_id`` = the global leaf id for clustered regions or -1,
``token_ids`` = the M OCR positives for text regions or an empty list). Images that did not
download, or have no labelled region, are counted drops. Shards are written in small row groups
(``row_group_rows`` images) so a reader can stream them without loading a whole shard of bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from regionset.common.files import write_atomic
from regionset.common.storage import as_path, is_remote
from regionset.schemas import (
    DUPLICATES,
    IMAGES,
    LABELS,
    REGION_DUPLICATES,
    REGIONS_OBJECT,
    REGIONS_TEXT,
    TRAIN,
    train_schema,
)
from regionset.schemas.tables import DUP_EVAL, STATUS_SUCCESS, TRAIN_REGION
from regionset.stages.base import Resources, Stage, config_hash

_IMAGE_COLS = ["key", "jpg", "caption", "width", "height"]
_REGION_COLS = ["region_id", "key", "source", "x0", "y0", "x1", "y1"]


@dataclass(frozen=True)
class PackConfig:
    """How training shards are written.

    Args:
        row_group_rows: images per Parquet row group (bounds a streaming reader's memory).
        sample: a ``regionset sample`` Parquet file: pack only its regions (empty: all regions).
        keep_region_duplicates: pack the regions ``semdedup`` flagged too (default: dropped).
    """

    row_group_rows: int = 64
    sample: str = ""
    keep_region_duplicates: bool = False
    resources: Resources = Resources()


SAMPLE_CACHE = "regionset-sample-cache"
"""Folder under the temp folder where a worker keeps ``pack.sample`` files fetched from URLs."""


def _sha256_of(sample: str) -> str:
    h = hashlib.sha256()
    try:
        with as_path(sample).open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        raise FileNotFoundError(f"pack.sample: cannot read {sample}: {e.strerror or e}") from None
    return h.hexdigest()


def _local_sample(sample: str, sha: str) -> tuple[str, str]:
    """(local path, sha256) of ``sample``; a URL's content is fetched unless the cache holds ``sha``."""
    if not is_remote(sample):
        return sample, _sha256_of(sample)
    cache = Path(tempfile.gettempdir()) / SAMPLE_CACHE
    if sha and (cache / f"{sha}.parquet").is_file():
        return str(cache / f"{sha}.parquet"), sha
    try:
        data = as_path(sample).read_bytes()
    except OSError as e:
        raise FileNotFoundError(f"pack.sample: cannot read {sample}: {e}") from None
    got = hashlib.sha256(data).hexdigest()
    cache.mkdir(parents=True, exist_ok=True)
    write_atomic(cache / f"{got}.parquet", data)
    return str(cache / f"{got}.parquet"), got


class PackStage(Stage):
    """Denormalise one shard into training rows."""

    name = "pack"
    inputs = (IMAGES, REGIONS_OBJECT, REGIONS_TEXT, LABELS)
    optional_inputs = (DUPLICATES, REGION_DUPLICATES)
    output = TRAIN
    table = TRAIN

    def __init__(self, config: PackConfig = PackConfig()) -> None:
        super().__init__(config)
        self.planned_sample = ""  # the sample's sha256 on the driver (``fingerprint``)
        self._sample: tuple[str, str] | None = None

    @property
    def row_group_rows(self) -> int:
        """Rows per row group of the written shard (read by the executor's writer)."""
        return self.config.row_group_rows

    def fingerprint(self, out: Path) -> str:
        """The sample file's content: a new sample redoes every shard."""
        if not self.config.sample:
            return ""
        self.planned_sample = _sha256_of(self.config.sample)  # travels with the stage to the workers
        return self.planned_sample

    def config_hash(self, out: Path) -> str:
        # Where the sample lives is not part of the result (its content is, through the fingerprint).
        cfg = dataclasses.replace(self.config, sample="") if self.config.sample else self.config
        return config_hash(cfg, f"{self.name}:{self.version}:{self.fingerprint(out)}")

    def verify_plan(self, planned_hash: str) -> None:
        """The sample this worker reads is the one the driver planned with (same content hash)."""
        if not self.config.sample:
            return
        local, sha = self._sample_file()
        if self.planned_sample and sha != self.planned_sample:
            raise FileNotFoundError(f"pack.sample: {self.config.sample} has sha256 {sha[:12]} here ({local}) but "
                                    f"the build planned {self.planned_sample[:12]}: was it replaced during the build?")

    def _sample_file(self) -> tuple[str, str]:
        """(a local path of the sample, its sha256): a URL is fetched once per worker into a local cache
        keyed by the content hash (``SAMPLE_CACHE`` under the temp folder)."""
        if self._sample is None:
            self._sample = _local_sample(self.config.sample, self.planned_sample)
        return self._sample

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "planned_sample": self.planned_sample}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"])
        self.planned_sample = state.get("planned_sample", "")

    def _sampled(self, regions: pa.Table, keys: pa.ChunkedArray) -> pa.Table:
        """``regions`` restricted to the sample file's regions of this shard's keys."""
        if not self.config.sample or regions.num_rows == 0:
            return regions
        lo, hi = pc.min(keys).as_py(), pc.max(keys).as_py()
        try:
            picked = pq.read_table(self._sample_file()[0], columns=["region_id"],
                                   filters=[("key", ">=", lo), ("key", "<=", hi)]).column("region_id")
        except (OSError, pa.ArrowInvalid) as e:
            raise FileNotFoundError(f"pack.sample: cannot read {self.config.sample}: {e}") from None
        keep = pc.fill_null(pc.is_in(regions.column("region_id"), value_set=picked.combine_chunks()), False)
        self._count("drop:not_sampled", regions.num_rows - int(pc.sum(keep).as_py() or 0))
        return regions.filter(keep)

    def prepare(self, tables: dict[str, pa.Table]) -> pa.Table:
        """Every ledger row with a ``regions`` list column of its labelled regions (possibly empty)."""
        images = tables[IMAGES].select([*_IMAGE_COLS, "status"])
        dups = tables.get(DUPLICATES)
        if dups is not None and dups.num_rows:  # evaluation look-alikes never reach train/
            evals = dups.filter(pc.equal(dups.column("kind"), DUP_EVAL)).column("key").combine_chunks()
            contaminated = pc.fill_null(pc.is_in(images.column("key"), value_set=evals), False)
            self._count("drop:eval_duplicate", int(pc.sum(contaminated).as_py() or 0))
            images = images.filter(pc.invert(contaminated))
        regions = pa.concat_tables([tables[REGIONS_OBJECT].select(_REGION_COLS),
                                    tables[REGIONS_TEXT].select(_REGION_COLS)])
        regions = self._sampled(regions, images.column("key"))
        sem = tables.get(REGION_DUPLICATES)
        if sem is not None and sem.num_rows and not self.config.keep_region_duplicates:
            dup = pc.fill_null(pc.is_in(regions.column("region_id"), value_set=sem.column("region_id").combine_chunks()),
                               False)
            self._count("drop:region_duplicate", int(pc.sum(dup).as_py() or 0))
            regions = regions.filter(pc.invert(dup))
        labels = tables[LABELS]
        li = pc.index_in(regions.column("region_id"), value_set=labels.column("region_id").combine_chunks())
        ii = pc.index_in(regions.column("key"), value_set=images.column("key").combine_chunks())
        keep = pc.and_(li.is_valid(), ii.is_valid())
        regions, li, ii = regions.filter(keep), li.filter(keep), ii.filter(keep)
        img = ii.to_numpy(zero_copy_only=False).astype(np.int64)
        order = np.argsort(img, kind="stable")
        lab = labels.take(pc.take(li, pa.array(order)))
        reg = regions.take(pa.array(order))
        box = np.stack([reg.column(c).to_numpy(zero_copy_only=False) for c in ("x0", "y0", "x1", "y1")], 1)
        class_id = pc.fill_null(lab.column("cluster_id"), -1)
        token_ids = pc.fill_null(lab.column("token_ids").combine_chunks(),
                                 pa.scalar([], pa.list_(pa.int32())))
        structs = pa.StructArray.from_arrays(
            [reg.column("region_id").combine_chunks(),
             pa.FixedSizeListArray.from_arrays(pa.array(box.astype(np.float32).ravel()), 4),
             reg.column("source").combine_chunks(), class_id.combine_chunks(), token_ids],
            fields=list(TRAIN_REGION))
        counts = np.bincount(img, minlength=images.num_rows)
        offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
        return images.append_column("regions", pa.ListArray.from_arrays(offsets, structs))

    def _count(self, reason: str, n: int) -> None:
        if n:
            self.counters[reason] += n

    def process(self, table: pa.Table) -> pa.Table:
        """Keep downloaded images with at least one labelled region, in the train schema."""
        ok = pc.fill_null(pc.and_kleene(pc.equal(table.column("status"), STATUS_SUCCESS),
                                        table.column("jpg").is_valid()), False)
        downloaded = table.filter(ok)
        self._count("drop:not_downloaded", table.num_rows - downloaded.num_rows)
        out = downloaded.filter(pc.greater(pc.list_value_length(downloaded.column("regions")), 0))
        self._count("drop:no_labelled_region", downloaded.num_rows - out.num_rows)
        self._count("regions", int(pc.sum(pc.list_value_length(out.column("regions"))).as_py() or 0))
        return out.select(train_schema().names).cast(train_schema())
