"""detect: ``images`` -> object regions (``regions`` rows with ``source='object'``).

Two backends: the weight-free Felzenszwalb proposer (the offline default) and ultralytics (YOLO,
YOLO-World, FastSAM, SAM; a local ``.pt``/``.onnx``, a known name where downloads are allowed, or a
model ``.yaml`` with random weights for wiring tests). The RICE filters run on every backend: boxes
whose shortest side is under ``min_box_side`` original-image pixels are dropped, images whose
shortest edge is under ``min_image_side`` are skipped, and at most ``max_regions`` boxes are kept per
image; each drop is counted by reason.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa

from regionset.common.storage import local_absolute
from regionset.common.typed_config import ConfigError
from regionset.models.proposer import ProposerConfig
from regionset.models.registry import PROPOSER, ModelUnavailable, package_version, resolve_detector
from regionset.schemas import DUPLICATES, IMAGES, REGIONS, REGIONS_OBJECT
from regionset.schemas.tables import SOURCE_OBJECT
from regionset.stages.base import Resources, Stage
from regionset.stages.dedup import skip_duplicates
from regionset.stages.region_helpers import RegionRows, batched, files_fingerprint, filter_boxes, iter_images


@dataclass(frozen=True)
class UltralyticsConfig:
    """Options of the ``ultralytics`` backend (YOLO, YOLO-World, FastSAM, SAM).

    Args:
        model: a local ``.pt``/``.onnx`` path, a known name (``yolo11n.pt``, ``FastSAM-s.pt``,
            ``sam_b.pt``; needs a download unless found locally) or a model ``.yaml`` (random
            weights: wiring tests only).
        family: the model family; ``auto`` guesses from the file name.
        device: ``auto`` (CUDA when visible), ``cpu``, ``cuda``, ``cuda:N``.
        imgsz: inference size.
        conf: confidence threshold.
        iou: NMS IoU threshold.
        classes: class ids to keep (empty: all).
        max_det: detections per image before the filters.
        half: fp16 inference on CUDA.
        batch_size: images per predict call.
    """

    model: str = ""
    family: Literal["auto", "yolo", "world", "fastsam", "sam"] = "auto"
    device: str = "auto"
    imgsz: int = 640
    conf: float = 0.25
    iou: float = 0.7
    classes: tuple[int, ...] = ()
    max_det: int = 100
    half: bool = True
    batch_size: int = 8


@dataclass(frozen=True)
class DetectConfig:
    """How object regions are proposed and filtered.

    Args:
        backend: ``proposer`` (weight-free, offline) or ``ultralytics``.
        min_box_side: RICE: drop boxes whose shortest side is below this, in original-image pixels.
        min_image_side: RICE: skip images whose shortest edge is below this, in original pixels.
        max_box_area: drop boxes covering more than this fraction of the image.
        max_regions: keep at most this many boxes per image, best score first (0: no cap).
        skip_duplicates: skip images the ``duplicates`` table lists (``skip:duplicate``); false keeps them.
        batch_images: ``ultralytics``: images gathered, then predicted in batches of images of the
            same size only (``ultralytics.batch_size`` each), so each image's boxes equal predicting
            it alone; 1 = batches of ``ultralytics.batch_size`` in arrival order, which letterbox
            mixed sizes to one padded shape (boxes then depend on the batch). The proposer reads one
            image at a time either way (it has no batched form).
        proposer: options of the weight-free proposer (used when ``backend: proposer``).
        ultralytics: options of the ``ultralytics`` backend (used when ``backend: ultralytics``).
    """

    # The flat keys of regionset 0.1, mapped onto ``ultralytics`` with a warning for one release
    # (common/typed_config.py); hashes use ``flat_dict``, which puts them back: markers stay valid.
    DEPRECATED_KEYS: ClassVar[dict[str, str]] = {
        key: f"ultralytics.{key}"
        for key in ("model", "family", "device", "imgsz", "conf", "iou", "classes", "max_det", "half", "batch_size")
    }

    # Added after markers existed: left out of hashes while at its default (common/typed_config.py).
    HASH_OMIT_DEFAULT: ClassVar[tuple[str, ...]] = ("batch_images",)

    backend: Literal["proposer", "ultralytics"] = "proposer"
    min_box_side: int = 128
    min_image_side: int = 336
    max_box_area: float = 0.95
    max_regions: int = 20
    skip_duplicates: bool = True
    batch_images: int = 1
    proposer: ProposerConfig = field(default_factory=ProposerConfig)
    ultralytics: UltralyticsConfig = field(default_factory=UltralyticsConfig)
    resources: Resources = Resources()

    def check(self) -> None:
        """``batch_images`` is at least 1."""
        if self.batch_images < 1:
            raise ConfigError(f"detect.batch_images={self.batch_images}: must be at least 1")


class DetectStage(Stage):
    """Propose object boxes for every usable image of a shard."""

    name = "detect"
    inputs = (IMAGES,)
    optional_inputs = (DUPLICATES,)
    output = REGIONS_OBJECT
    table = REGIONS
    version = "1"

    def __init__(self, config: DetectConfig | None = None) -> None:
        super().__init__(config or DetectConfig())
        self._model: Any = None
        self.model_id = ""

    def shipped_config(self) -> DetectConfig:
        """``ultralytics.model`` as the driver resolves it (a relative path, or a name found in
        ``$REGIONSET_WEIGHTS``): the absolute file, which every worker must hold (the worker probe checks)."""
        u = self.config.ultralytics
        if self.config.backend != "ultralytics":
            return self.config
        try:
            source = resolve_detector(u.model, u.family).source
        except ModelUnavailable:
            return self.config
        model = local_absolute(source) if Path(source).expanduser().is_file() else u.model
        return dataclasses.replace(self.config, ultralytics=dataclasses.replace(u, model=model))

    def device(self) -> str:
        """``ultralytics.device`` (a CUDA device asks executors for a GPU, ``Stage.resources``; ``auto``
        one where the cluster has GPUs); empty for the weight-free ``proposer``, which uses none."""
        return self.config.ultralytics.device if self.config.backend == "ultralytics" else ""

    def fingerprint(self, out) -> str:
        return files_fingerprint(self.config.ultralytics.model)

    def lineage(self) -> dict[str, Any]:
        """Model id, version and warnings for ``regionset.yaml`` (cheap: nothing is built)."""
        c = self.config
        if c.backend == "proposer":
            from regionset.models.proposer import FelzenszwalbProposer

            return {"backend": PROPOSER, "model": FelzenszwalbProposer(c.proposer).model_id,
                    "version": package_version("scikit-image"), "warnings": []}
        u = c.ultralytics
        r = resolve_detector(u.model, u.family)
        warnings = [f"detect: {u.model} has RANDOM weights (a model .yaml): its boxes are noise; "
                    f"use it for wiring tests only"] if r.random_weights else []
        return {"backend": "ultralytics", "model": r.model_id, "family": r.family,
                "version": package_version("ultralytics"), "warnings": warnings}

    def setup(self) -> None:
        c = self.config
        if c.backend == "proposer":
            from regionset.models.proposer import FelzenszwalbProposer

            self._model = FelzenszwalbProposer(c.proposer)
        else:
            from regionset.models.detector import UltralyticsDetector

            u = c.ultralytics
            self._model = UltralyticsDetector(u.model, family=u.family, device=u.device, imgsz=u.imgsz,
                                              conf=u.conf, iou=u.iou, classes=u.classes, max_det=u.max_det,
                                              half=u.half)
        self.model_id = self._model.model_id

    def prepare(self, tables: dict[str, pa.Table]) -> pa.Table:
        """The shard's ledger, without the duplicate images unless ``skip_duplicates`` is off."""
        return skip_duplicates(tables[IMAGES], tables, self.config.skip_duplicates, self.counters)

    def process(self, table: pa.Table) -> pa.Table:
        c = self.config
        rows = RegionRows(SOURCE_OBJECT, self.model_id, self.counters)
        same_size = c.backend == "ultralytics" and c.batch_images > 1
        n = c.batch_images if same_size else c.ultralytics.batch_size if c.backend == "ultralytics" else 1
        images = iter_images(table, self.counters, c.min_image_side, lookahead=n, memo=self.decoded)
        detect = self.detect_same_size if same_size else self.detect
        for batch in batched(images, n):
            for img, (boxes, scores, classes) in zip(batch, detect([im.rgb for im in batch])):
                keep = filter_boxes(img, boxes, scores, self.counters, min_box_side=c.min_box_side,
                                    max_box_area=c.max_box_area, max_regions=c.max_regions)
                for i in keep:
                    rows.add(img.key, boxes[i], scores[i], class_name=classes[i])
        return rows.table()

    def detect(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, list[str | None]]]:
        """Raw (unfiltered) boxes, scores and class names for RGB images; also used by the benchmark."""
        self.ensure_setup()
        if self.config.backend == "proposer":
            out = []
            for im in images:
                boxes, scores = self._model(im)
                out.append((boxes, scores, [None] * len(boxes)))
            return out
        return [(d.boxes, d.scores, d.classes) for d in self._model(images, batch_size=self.config.ultralytics.batch_size)]

    def detect_same_size(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, list[str | None]]]:
        """``detect`` over groups of images of one size (``detect.batch_images``), in input order."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, im in enumerate(images):
            groups.setdefault(im.shape, []).append(i)
        out: list = [None] * len(images)
        for idx in groups.values():
            for i, got in zip(idx, self.detect([images[i] for i in idx])):
                out[i] = got
        return out
