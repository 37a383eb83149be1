"""embed: ``images`` + ``regions`` -> ``embeddings`` (one L2-normalised fp16 vector per region).

Each region is cropped from the stored image (optionally padded by ``context`` of its size on each
side), fitted to the model's input by its own open_clip transform, encoded in batches, normalised
and stored as ``fixed_size_list<float16>[dim]``. The model is an open_clip name plus a pretrained
tag or a local checkpoint; ``pretrained: none`` (random weights) works only with a loud warning,
printed and written into ``regionset.yaml``.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regionset.common.storage import local_absolute
from regionset.models.clip_registry import RICE_PREFIX, TINY_CLIP, clip_embed_dim, resolve_clip
from regionset.schemas import (
    DUPLICATES,
    EMBEDDINGS,
    IMAGES,
    REGIONS_OBJECT,
    REGIONS_TEXT,
    embeddings_schema,
    images_schema,
)
from regionset.schemas.tables import SOURCE_OBJECT, SOURCE_TEXT
from regionset.stages.base import Resources, Stage
from regionset.stages.dedup import skip_duplicates
from regionset.stages.region_helpers import files_fingerprint, iter_images

_SOURCE_DIRS = {SOURCE_OBJECT: REGIONS_OBJECT, SOURCE_TEXT: REGIONS_TEXT}
_BOX = pa.struct([("region_id", pa.string()), ("x0", pa.float32()), ("y0", pa.float32()),
                  ("x1", pa.float32()), ("y1", pa.float32())])


@dataclass(frozen=True)
class EmbedConfig:
    """How region crops are embedded.

    Args:
        model: open_clip model config name; ``regionset-tiny-vit`` is a small config registered by
            regionset (for the demo and tests); ``ViT-B-32``, ``ViT-B-16``, ``ViT-L-14`` ... for real data.
        pretrained: an open_clip pretrained tag (needs the file in the local cache offline), a local
            checkpoint path, or ``none`` (random weights: loud warning; embeddings mean nothing).
        device: ``auto`` (CUDA when visible), ``cpu``, ``cuda``, ``cuda:N``.
        precision: ``auto`` = fp16 autocast on CUDA, fp32 on CPU; or ``fp32``/``fp16``/``bf16``.
        resize_mode: ``squash`` keeps the whole region (aspect distorted), ``shortest`` is open_clip's
            resize + centre crop, ``longest`` pads.
        context: pad each box by this fraction of its width/height on each side before cropping.
        batch_size: crops per forward pass.
        workers: crop-preprocessing threads (0: up to 8 on CUDA, 2 on CPU).
        sources: which regions to embed (``object``, ``text``); each adds its regions folder to the inputs.
        skip_duplicates: skip images the ``duplicates`` table lists (``skip:duplicate``); false keeps them.
    """

    model: str = TINY_CLIP
    pretrained: str = "none"
    device: str = "auto"
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    resize_mode: Literal["squash", "shortest", "longest"] = "squash"
    context: float = 0.0
    batch_size: int = 64
    workers: int = 0
    sources: tuple[str, ...] = (SOURCE_OBJECT, SOURCE_TEXT)
    skip_duplicates: bool = True
    resources: Resources = Resources()


class EmbedStage(Stage):
    """Crop, encode and normalise every region of a shard."""

    name = "embed"
    optional_inputs = (DUPLICATES,)
    output = EMBEDDINGS
    table = EMBEDDINGS
    version = "1"

    def __init__(self, config: EmbedConfig | None = None) -> None:
        super().__init__(config or EmbedConfig())
        unknown = [s for s in self.config.sources if s not in _SOURCE_DIRS]
        if unknown:
            raise ValueError(f"embed.sources: unknown source {unknown[0]!r}; known: {list(_SOURCE_DIRS)}")
        self._embedder: Any = None

    @property
    def inputs(self) -> tuple[str, ...]:  # type: ignore[override]
        return (IMAGES, *(_SOURCE_DIRS[s] for s in self.config.sources))

    @property
    def dim(self) -> int:
        """Embedding width, read from the open_clip config (no model is built)."""
        return clip_embed_dim(self.config.model)

    def output_schema(self) -> pa.Schema:
        return embeddings_schema(self.dim)

    def shipped_config(self) -> EmbedConfig:
        """``rice:<folder>`` and a ``pretrained`` checkpoint path made absolute here, on the driver."""
        c = self.config
        model = RICE_PREFIX + local_absolute(c.model[len(RICE_PREFIX):]) if c.model.startswith(RICE_PREFIX) else c.model
        return dataclasses.replace(c, model=model, pretrained=local_absolute(c.pretrained))

    def fingerprint(self, out) -> str:
        c = self.config
        return files_fingerprint(c.pretrained)

    def lineage(self) -> dict[str, Any]:
        """Model id, width and warnings for ``regionset.yaml`` (cheap: resolves, builds nothing)."""
        from regionset.models.embedder import random_weights_warning
        from regionset.models.registry import package_version

        c = self.config
        r = resolve_clip(c.model, c.pretrained)
        return {"model": r.model_id, "dim": self.dim, "version": package_version("open_clip_torch"),
                "warnings": [random_weights_warning(c.model)] if r.pretrained is None else []}

    def setup(self) -> None:
        from regionset.models.embedder import ClipEmbedder

        c = self.config
        self._embedder = ClipEmbedder(c.model, c.pretrained, device=c.device, precision=c.precision,
                                      resize_mode=c.resize_mode, workers=c.workers)

    @property
    def embedder(self):
        """The built ``ClipEmbedder`` (builds it on first use)."""
        self.ensure_setup()
        return self._embedder

    def prepare(self, tables: dict[str, pa.Table]) -> pa.Table:
        """One row per image: the ledger columns plus ``regions``: list<struct<region_id, x0..y1>>."""
        boxes: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for folder in self.inputs[1:]:
            t = tables[folder].select(["key", "region_id", "x0", "y0", "x1", "y1"]).to_pylist()
            for r in t:
                boxes[r.pop("key")].append(r)
        all_keys = tables[IMAGES].column("key")
        images = skip_duplicates(tables[IMAGES], tables, self.config.skip_duplicates, self.counters)
        images = images.select([f.name for f in images_schema()])
        keys = set(images.column("key").to_pylist())
        skipped = set(all_keys.to_pylist()) - keys  # regions of skipped duplicates are not orphans
        boxes = {k: v for k, v in boxes.items() if k not in skipped}
        orphans = sum(len(v) for k, v in boxes.items() if k not in keys)
        if orphans:
            self.counters["drop:region_without_image"] += orphans
        regions = pa.array([boxes.get(k, []) for k in images.column("key").to_pylist()], pa.list_(_BOX))
        return images.append_column("regions", regions)

    def crops(self, table: pa.Table) -> Iterator[tuple[str, str, Any]]:
        """(region_id, key, PIL crop) for every region of the prepared table, counting skips."""

        c = self.config
        with_regions = table.filter(pc.greater(pc.list_value_length(table.column("regions")), 0))
        per_key = dict(zip(with_regions.column("key").to_pylist(), with_regions.column("regions").to_pylist()))
        decoded: set[str] = set()
        for img in iter_images(with_regions, self.counters, memo=self.decoded):
            decoded.add(img.key)
            pil = img.pil
            for r in per_key[img.key]:
                x0, y0, x1, y1 = r["x0"], r["y0"], r["x1"], r["y1"]
                px, py = (x1 - x0) * c.context, (y1 - y0) * c.context
                box = (max(0, round(x0 - px)), max(0, round(y0 - py)),
                       min(img.width, round(x1 + px)), min(img.height, round(y1 + py)))
                if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                    self.counters["drop:empty_crop"] += 1
                    continue
                yield r["region_id"], img.key, pil.crop(box)
        lost = sum(len(v) for k, v in per_key.items() if k not in decoded)
        if lost:
            self.counters["drop:image_unusable"] += lost

    def process(self, table: pa.Table) -> pa.Table:
        return self.encode(self.crops(table))

    def encode(self, region_crops: Iterator[tuple[str, str, Any]]) -> pa.Table:
        """The embeddings table of ``(region_id, key, PIL crop)`` items, in their order."""
        emb = self.embedder
        ids: list[str] = []
        keys: list[str] = []

        def crops():
            for rid, key, crop in region_crops:
                ids.append(rid)
                keys.append(key)
                yield crop

        # crops stream into the embedder, which preprocesses them in threads while decoding goes on
        vectors = list(emb.encode_iter(crops(), self.config.batch_size))
        self.counters["regions:embedded"] += len(ids)
        dim = self.dim
        flat = np.concatenate(vectors).astype(np.float16).ravel() if vectors else np.zeros(0, np.float16)
        col = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float16()), dim)
        return pa.Table.from_arrays(
            [pa.array(ids, pa.string()), pa.array(keys, pa.string()), col,
             pa.array([emb.model_id] * len(ids), pa.string())], schema=embeddings_schema(dim))
