"""ocr: ``images`` -> text regions (``regions`` rows with ``source='text'``, ``text``, ``score``).

Default backend: PP-OCRv4 det + rec as ONNX through RapidOCR (shipped in the wheel: no download),
tuned for web images (docs/region-stages.md): the detector never upscales (``det_limit_type=max``,
960 px), the angle classifier is off, and detected boxes are grown more than RapidOCR's default
(``unclip_ratio=2.0``) so that recognition keeps the spaces between words. Alternative backend:
PaddleOCR with local model folders, in its own venv (``ocr.paddleocr.python``). RICE keeps recognitions
with confidence > 0.7; each text quadrilateral becomes its axis-aligned bounding box.

PP-OCR often drops the space between two words ("saffroncopper"); ``restore_spaces`` (default
``gaps``: the recogniser's own space probabilities between characters, ``models/ocr_spaces.py``)
puts them back in ``text`` and keeps the recogniser's output in ``text_raw``. With
``download.keep_original`` the images table also holds the downloaded bytes of resized images, and
``use_original`` (default on) makes OCR read those, with boxes scaled back to stored pixels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa

from regionset.common.storage import local_absolute
from regionset.common.typed_config import ConfigError
from regionset.models.ocr import TUNED_LIMIT_SIDE, TUNED_LIMIT_TYPE, TUNED_UNCLIP, TUNED_USE_CLS
from regionset.models.ocr_spaces import (
    TUNED_GAP_RATIO,
    TUNED_RESTORE,
    TUNED_SPACE_PROB,
    RestoreMode,
    restore_spaces,
)
from regionset.models.registry import PADDLEOCR, RAPIDOCR, package_version, rapidocr_model_id
from regionset.schemas import DUPLICATES, IMAGES, REGIONS, REGIONS_TEXT
from regionset.schemas.tables import SOURCE_TEXT
from regionset.stages.base import Resources, Stage
from regionset.stages.dedup import skip_duplicates
from regionset.stages.region_helpers import (
    RegionRows,
    batched,
    decode_rgb,
    files_fingerprint,
    filter_boxes,
    iter_images,
)


@dataclass(frozen=True)
class RapidOcrConfig:
    """Options of the ``rapidocr`` backend (PP-OCRv4 ONNX shipped in the wheel, offline).

    Args:
        det_limit_type: ``max`` caps the longest side (never upscales); ``min`` upscales.
        det_limit_side_len: the side limit of ``det_limit_type``.
        box_thresh: detector box threshold.
        unclip_ratio: growth of detected text boxes (2.0 keeps word spaces; 1.6 is RapidOCR's).
        det_model: a local det ``.onnx`` instead of the shipped PP-OCRv4 one.
        rec_model: a local rec ``.onnx`` instead of the shipped PP-OCRv4 one.
    """

    det_limit_type: Literal["max", "min"] = TUNED_LIMIT_TYPE
    det_limit_side_len: int = TUNED_LIMIT_SIDE
    box_thresh: float = 0.5
    unclip_ratio: float = TUNED_UNCLIP
    det_model: str = ""
    rec_model: str = ""


@dataclass(frozen=True)
class PaddleOcrConfig:
    """Options of the ``paddleocr`` backend (local model folders, run in its own venv).

    Args:
        python: the interpreter of the venv that has paddleocr (empty: this one).
        det_model_dir: local text-detection inference folder (required).
        rec_model_dir: local text-recognition inference folder (required).
        cls_model_dir: local angle-classifier folder (with ``use_cls``).
        det_model_name: paddleocr >= 3: the model name of ``det_model_dir``.
        rec_model_name: paddleocr >= 3: the model name of ``rec_model_dir``.
        lang: paddleocr 2.x ``lang``.
        start_timeout: seconds the paddleocr worker may take to start before it is killed.
    """

    python: str = ""
    det_model_dir: str = ""
    rec_model_dir: str = ""
    cls_model_dir: str = ""
    det_model_name: str = ""
    rec_model_name: str = ""
    lang: str = "en"
    start_timeout: float = 120.0


@dataclass(frozen=True)
class OcrConfig:
    """How text regions are read and filtered.

    Args:
        backend: ``rapidocr`` (PP-OCRv4 ONNX, offline) or ``paddleocr`` (local model folders).
        min_score: keep recognitions with confidence above this (RICE: 0.7).
        min_text_len: drop recognitions shorter than this (after stripping spaces).
        use_cls: run the 0/180 degree angle classifier (both backends).
        min_box_side: drop text boxes whose shortest side is below this, in original pixels.
        min_image_side: skip images whose shortest edge is below this, in original pixels.
        max_regions: keep at most this many text regions per image, best score first (0: no cap).
        skip_duplicates: skip images the ``duplicates`` table lists (``skip:duplicate``); false keeps them.
        restore_spaces: put back spaces the recogniser dropped: ``gaps`` (its space probabilities
            between characters), ``wordseg`` (a word segmenter on letter runs), ``both`` or ``off``.
        space_prob: ``gaps``: a space probability at or above this between two characters is a space.
        gap_ratio: ``gaps``: a frame gap this many times the line's median is a space (0: off).
        use_original: read the ``original`` bytes of the images table where download kept them
            (``download.keep_original``); boxes are still in stored pixels.
        batch_images: ``rapidocr``: images handed to the backend at once; on a GPU provider read
            together (text detection batched over same-size images, recognition over all their
            line crops; ``models/ocr_batch.py``), on the CPU one at a time (faster there). The
            lines are the same either way.
        device: ``rapidocr``: where the ONNX models run: ``auto`` (CUDA when onnxruntime-gpu and a GPU
            are there), ``cpu``, ``cuda``, ``cuda:N``, ``tensorrt``, ``tensorrt:N`` (``models/ocr_device.py``).
        rapidocr: options of the ``rapidocr`` backend (used when ``backend: rapidocr``).
        paddleocr: options of the ``paddleocr`` backend (used when ``backend: paddleocr``).
    """

    # The flat keys of regionset 0.1, mapped onto the sections with a warning for one release
    # (common/typed_config.py); hashes use ``flat_dict``, which puts them back: markers stay valid.
    DEPRECATED_KEYS: ClassVar[dict[str, str]] = {
        "det_limit_type": "rapidocr.det_limit_type",
        "det_limit_side_len": "rapidocr.det_limit_side_len",
        "box_thresh": "rapidocr.box_thresh",
        "unclip_ratio": "rapidocr.unclip_ratio",
        "det_model": "rapidocr.det_model",
        "rec_model": "rapidocr.rec_model",
        "paddle_python": "paddleocr.python",
        "det_model_dir": "paddleocr.det_model_dir",
        "rec_model_dir": "paddleocr.rec_model_dir",
        "cls_model_dir": "paddleocr.cls_model_dir",
        "det_model_name": "paddleocr.det_model_name",
        "rec_model_name": "paddleocr.rec_model_name",
        "lang": "paddleocr.lang",
        "paddle_start_timeout": "paddleocr.start_timeout",
    }

    # Added after markers existed: left out of hashes while at their default (common/typed_config.py),
    # so shards finished before it stay finished. ``batch_images`` changes speed only (the lines are
    # the same, tests/models/test_ocr_batch.py): never hashed, so changing it redoes nothing.
    HASH_OMIT_DEFAULT: ClassVar[tuple[str, ...]] = ("device",)
    NOT_HASHED: ClassVar[tuple[str, ...]] = ("batch_images",)

    backend: Literal["rapidocr", "paddleocr"] = RAPIDOCR
    min_score: float = 0.7
    min_text_len: int = 1
    use_cls: bool = TUNED_USE_CLS
    min_box_side: int = 0
    min_image_side: int = 336
    max_regions: int = 100
    skip_duplicates: bool = True
    restore_spaces: RestoreMode = TUNED_RESTORE
    space_prob: float = TUNED_SPACE_PROB
    gap_ratio: float = TUNED_GAP_RATIO
    use_original: bool = True
    batch_images: int = 1
    device: str = "auto"
    rapidocr: RapidOcrConfig = field(default_factory=RapidOcrConfig)
    paddleocr: PaddleOcrConfig = field(default_factory=PaddleOcrConfig)
    resources: Resources = Resources()

    def check(self) -> None:
        """``batch_images`` is at least 1; ``device`` is one ``models/ocr_device.py`` knows."""
        from regionset.models.ocr_device import check_device

        if self.batch_images < 1:
            raise ConfigError(f"ocr.batch_images={self.batch_images}: must be at least 1")
        try:
            check_device(self.device)
        except ValueError as e:
            raise ConfigError(str(e)) from None


class OcrStage(Stage):
    """Read text lines in every usable image of a shard."""

    name = "ocr"
    inputs = (IMAGES,)
    optional_inputs = (DUPLICATES,)
    output = REGIONS_TEXT
    table = REGIONS
    version = "2"

    def __init__(self, config: OcrConfig | None = None) -> None:
        super().__init__(config or OcrConfig())
        self._engine: Any = None
        self.model_id = ""

    def shipped_config(self) -> OcrConfig:
        """The model files, model folders and PaddleOCR interpreter made absolute here, on the driver."""
        c, r, p = self.config, self.config.rapidocr, self.config.paddleocr
        return dataclasses.replace(
            c, rapidocr=dataclasses.replace(r, det_model=local_absolute(r.det_model), rec_model=local_absolute(r.rec_model)),
            paddleocr=dataclasses.replace(p, python=local_absolute(p.python), det_model_dir=local_absolute(p.det_model_dir),
                                          rec_model_dir=local_absolute(p.rec_model_dir),
                                          cls_model_dir=local_absolute(p.cls_model_dir)))

    def device(self) -> str:
        """``ocr.device`` for the ``rapidocr`` backend (a CUDA device asks executors for a GPU)."""
        return self.config.device if self.config.backend == RAPIDOCR else "cpu"

    def device_here(self) -> str:
        """``auto`` is the CPU where onnxruntime has no CUDA provider (the CPU install)."""
        device = self.device()
        if device != "auto":
            return device
        from regionset.models.ocr_device import CUDA, available_providers

        return device if CUDA in available_providers() else "cpu"

    def fingerprint(self, out) -> str:
        c = self.config.rapidocr
        return files_fingerprint(c.det_model, c.rec_model)

    def lineage(self) -> dict[str, Any]:
        """Model id, version and warnings for ``regionset.yaml`` (cheap: nothing is built)."""
        c = self.config
        r, p = c.rapidocr, c.paddleocr
        if c.backend == RAPIDOCR:
            return {"backend": RAPIDOCR, "model": rapidocr_model_id(r.det_model, r.rec_model),
                    "version": package_version("rapidocr-onnxruntime"), "warnings": []}
        return {"backend": PADDLEOCR, "model": f"{p.det_model_dir}+{p.rec_model_dir}",
                "python": p.python or "(this interpreter)", "warnings": []}

    def setup(self) -> None:
        c = self.config
        if c.backend == RAPIDOCR:
            from regionset.models.ocr import RapidOcr

            r = c.rapidocr
            self._engine = RapidOcr(det_limit_type=r.det_limit_type, det_limit_side_len=r.det_limit_side_len,
                                    use_cls=c.use_cls, box_thresh=r.box_thresh, unclip_ratio=r.unclip_ratio,
                                    det_model=r.det_model, rec_model=r.rec_model, device=c.device)
        else:
            from regionset.models.ocr import PaddleOcr

            p = c.paddleocr
            self._engine = PaddleOcr(python=p.python, det_model_dir=p.det_model_dir,
                                     rec_model_dir=p.rec_model_dir, cls_model_dir=p.cls_model_dir,
                                     det_model_name=p.det_model_name, rec_model_name=p.rec_model_name,
                                     use_cls=c.use_cls, lang=p.lang, start_timeout=p.start_timeout)
        self.model_id = self._engine.model_id

    def read(self, image: np.ndarray):
        """Raw text lines of one RGB image (no filtering); also used by the benchmark."""
        self.ensure_setup()
        return self._engine(image)

    def prepare(self, tables: dict[str, pa.Table]) -> pa.Table:
        """The shard's ledger, without the duplicate images unless ``skip_duplicates`` is off."""
        return skip_duplicates(tables[IMAGES], tables, self.config.skip_duplicates, self.counters)

    def read_many(self, images: list[np.ndarray]) -> list[list]:
        """Raw text lines of several RGB images (``ocr.batch_images``); the per-image lines."""
        self.ensure_setup()
        if len(images) > 1 and hasattr(self._engine, "read_many"):
            return self._engine.read_many(images)
        return [self._engine(im) for im in images]

    def _pixels(self, img, original: bytes | None) -> tuple[np.ndarray, np.ndarray | None]:
        """The pixels OCR reads for one image and their scale to stored pixels (None: stored)."""
        if original is None:
            return img.rgb, None
        rgb = decode_rgb(original)
        self.counters["ocr:original"] += 1
        return rgb, np.array([rgb.shape[1] / img.width, rgb.shape[0] / img.height], np.float32)

    def _read_images(self, batch: list, data: list[bytes | None]) -> list[list | Exception]:
        """Lines of each image in stored pixels, or the exception that image raised."""
        pixels: list = []
        for img, raw in zip(batch, data):
            try:
                pixels.append(self._pixels(img, raw or None))
            except Exception as e:  # noqa: BLE001 - one bad image must not fail the shard
                pixels.append(e)
        ok = [i for i, p in enumerate(pixels) if not isinstance(p, Exception)]
        got: dict[int, list | Exception] = {}
        try:
            got = dict(zip(ok, self.read_many([pixels[i][0] for i in ok])))
        except Exception as e:  # noqa: BLE001 - retried one image at a time, so the bad one is the skip
            got = {i: e for i in ok}
            for i in ok if len(ok) > 1 else ():
                try:
                    got[i] = self.read_many([pixels[i][0]])[0]
                except Exception as e:  # noqa: BLE001
                    got[i] = e
        out: list[list | Exception] = []
        for i, p in enumerate(pixels):
            lines = p if isinstance(p, Exception) else got[i]
            if not isinstance(lines, Exception) and p[1] is not None:
                lines = [dataclasses.replace(ln, quad=ln.quad / p[1]) for ln in lines]
            out.append(lines)
        return out

    def process(self, table: pa.Table) -> pa.Table:
        c = self.config
        rows = RegionRows(SOURCE_TEXT, self.model_id, self.counters)
        original = table.column("original") if c.use_original and "original" in table.column_names else None
        row_of = {k: i for i, k in enumerate(table.column("key").to_pylist())} if original is not None else {}
        n = max(1, c.batch_images)
        for batch in batched(iter_images(table, self.counters, c.min_image_side, lookahead=n, memo=self.decoded), n):
            data = [original[row_of[img.key]].as_py() if original is not None else None for img in batch]
            for img, lines in zip(batch, self._read_images(batch, data)):
                if isinstance(lines, Exception):
                    self.counters[f"skip:ocr_error:{type(lines).__name__}"] += 1
                    continue
                self._add_lines(rows, img, lines)
        return rows.table()

    def _add_lines(self, rows: RegionRows, img, lines: list) -> None:
        """Filter one image's lines and add the kept ones to ``rows`` in reading order."""
        c = self.config
        good = []
        for line in lines:
            if line.score <= c.min_score:
                self.counters["drop:low_confidence"] += 1
            elif len(line.text.replace(" ", "")) < c.min_text_len:
                self.counters["drop:text_too_short"] += 1
            else:
                good.append(line)
        if not good:
            return
        boxes = np.array([[*ln.quad.min(0), *ln.quad.max(0)] for ln in good], dtype=np.float32)
        scores = np.array([ln.score for ln in good], dtype=np.float32)
        keep = filter_boxes(img, boxes, scores, self.counters, min_box_side=c.min_box_side,
                            max_box_area=1.0, max_regions=c.max_regions)
        for i in sorted(keep, key=lambda i: (boxes[i, 1], boxes[i, 0])):  # reading order
            ln = good[i]
            text = restore_spaces(ln.text, ln.times, c.restore_spaces, c.space_prob, c.gap_ratio)
            self.counters["spaces_restored"] += text != ln.text
            rows.add(img.key, boxes[i], scores[i], text=text, text_raw=ln.text)

    def teardown(self) -> None:
        """Release the backend (stops the paddleocr worker process)."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None
