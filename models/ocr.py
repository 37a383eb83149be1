"""OCR backends: RapidOCR (PP-OCRv4 det + rec as ONNX, shipped in the wheel) and PaddleOCR.

Both take an RGB uint8 image and return ``TextLine`` s: a quadrilateral in image pixels, the text
and the recogniser's confidence. Confidence filtering and box conversion are the stage's business.

RapidOCR tuning (measured on rendered pages, see docs/region-stages.md): the detector's default
``limit_type="min", limit_side_len=736`` *upscales* every image until its shortest side is 736,
which is slow (~0.7 s for a small image) and split or missed lines; ``limit_type="max",
limit_side_len=960`` only ever downscales large images, read every rendered line, and took ~0.25 s.
The angle classifier (``use_cls``) flips upright lines by mistake and costs time: off by default.

PaddleOCR pins numpy<2.4 and an old OpenCV, so it lives in its own virtual environment and runs in
a subprocess (``models/paddle_worker.py``, stdlib + paddleocr only). Offline it cannot fetch its
models: local model folders are required and checked before the worker starts, and the worker's
start is bounded by a timeout, so a misconfiguration fails fast instead of hanging in a download loop.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regionset.common import threads as worker_threads
from regionset.models.ocr_spaces import CharTimes, SpacingCTCDecode
from regionset.models.registry import ModelUnavailable, check_local_file, rapidocr_model_id

WORKER = Path(__file__).with_name("paddle_worker.py")

# Measured on rendered pages (docs/region-stages.md); OcrConfig takes its defaults from here.
TUNED_LIMIT_TYPE = "max"
TUNED_LIMIT_SIDE = 960
TUNED_USE_CLS = False
TUNED_UNCLIP = 2.0


@dataclass(frozen=True)
class TextLine:
    """One recognised line: ``quad`` is 4 x 2 (x, y) image pixels, clockwise from top-left.

    ``text`` is what the recogniser emitted; ``times`` (RapidOCR only) where it put each character,
    which ``regionset.models.ocr_spaces.restore_spaces`` uses to put back dropped spaces.
    """

    quad: np.ndarray
    text: str
    score: float
    times: CharTimes | None = None


def _line(row: tuple | list) -> TextLine:
    """A RapidOCR result row ``(quad, text, score[, CharTimes])`` as a ``TextLine``."""
    quad, text, score, *times = row
    return TextLine(np.asarray(quad, dtype=np.float32).reshape(4, 2), str(text), float(score),
                    times[0] if times else None)


class RapidOcr:
    """PP-OCRv4 det + rec through onnxruntime (``rapidocr-onnxruntime==1.4.4``).

    Args:
        det_limit_type: ``max`` caps the longest side at ``det_limit_side_len`` (never upscales);
            ``min`` (RapidOCR's default) scales the shortest side up to it.
        det_limit_side_len: see ``det_limit_type``.
        use_cls: run the 0/180 degree angle classifier.
        box_thresh: detector box score threshold.
        unclip_ratio: how much detected text boxes are grown (RapidOCR's 1.6 often merges the words
            of a line: 2.0 kept the spaces in 96 % of rendered lines vs 75-87 %).
        threads: onnxruntime intra- and inter-op threads of each session (0 = this worker's thread
            budget, ``regionset.common.threads.current()``).
        det_model: a local det ``.onnx`` instead of the shipped PP-OCRv4 one.
        rec_model: a local rec ``.onnx`` (with its dictionary embedded) instead of the shipped one.
        device: ``cpu``, ``auto``, ``cuda[:N]`` or ``tensorrt[:N]`` (``models/ocr_device.py``).
    """

    def __init__(self, det_limit_type: str = TUNED_LIMIT_TYPE, det_limit_side_len: int = TUNED_LIMIT_SIDE,
                 use_cls: bool = TUNED_USE_CLS, box_thresh: float = 0.5, unclip_ratio: float = TUNED_UNCLIP, threads: int = 0,
                 det_model: str = "", rec_model: str = "", device: str = "cpu") -> None:
        from regionset.models.ocr_device import CUDA, available_providers, gpu_visible, ocr_providers

        available = available_providers()
        self.providers = ocr_providers(device, available, device == "auto" and CUDA in available and gpu_visible())
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as e:  # pragma: no cover - a core dependency
            raise ModelUnavailable("rapidocr-onnxruntime is not installed: pip install rapidocr-onnxruntime==1.4.4") from e
        kwargs = {
            "det_limit_type": det_limit_type, "det_limit_side_len": det_limit_side_len, "use_cls": use_cls,
            "det_box_thresh": box_thresh, "det_unclip_ratio": unclip_ratio,
            "text_score": 0.0,  # the stage filters on confidence, so that drops are counted
            "print_verbose": False,
        }
        # RapidOCR 1.4.4 copies these Global options into the det, cls and rec SessionOptions.
        kwargs["intra_op_num_threads"] = kwargs["inter_op_num_threads"] = threads or worker_threads.current()
        if det_model:
            kwargs["det_model_path"] = check_local_file(det_model, "ocr.rapidocr.det_model")
        if rec_model:
            kwargs["rec_model_path"] = check_local_file(rec_model, "ocr.rapidocr.rec_model")
        self._engine = RapidOCR(**kwargs)
        # Same greedy decoding, plus each character's CTC frame and the space probabilities between.
        self._engine.text_rec.postprocess_op = SpacingCTCDecode(self._engine.text_rec.postprocess_op.character)
        from regionset.models.ocr_device import rebuild_sessions

        e = self._engine  # RapidOCR 1.4.4 names the OrtInferSession ``infer`` in det/cls, ``session`` in rec
        rebuild_sessions([e.text_det.infer, e.text_cls.infer, e.text_rec.session], self.providers)
        self._opts = {"box_thresh": box_thresh, "unclip_ratio": unclip_ratio, "text_score": 0.0}
        self.model_id = rapidocr_model_id(det_model, rec_model)

    def __call__(self, image: np.ndarray) -> list[TextLine]:
        """Read one RGB uint8 image."""
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        result, _ = self._engine(bgr, **self._opts)
        return [_line(row) for row in result or []]

    def read_many(self, images: list[np.ndarray]) -> list[list[TextLine]]:
        """Read RGB uint8 images: the same lines as calling this object on each image. On a GPU
        provider they are read together (``models/ocr_batch.py``: detection batched over same-size
        images, recognition over all their line crops); on the CPU one at a time."""
        from regionset.models.ocr_batch import read_batch
        from regionset.models.ocr_device import CPU

        if self.providers[0][0] == CPU:  # measured: batches cost 5-15 % more CPU there (BENCHMARKS.md)
            return [self(im) for im in images]
        e = self._engine
        e.text_det.postprocess_op.box_thresh = self._opts["box_thresh"]
        e.text_det.postprocess_op.unclip_ratio = self._opts["unclip_ratio"]
        e.text_score = self._opts["text_score"]
        rows = read_batch(e, [np.ascontiguousarray(im[:, :, ::-1]) for im in images], e.use_cls)
        return [[_line(r) for r in per_image] for per_image in rows]

    def session_threads(self) -> dict[str, int]:
        """The intra-op threads each onnxruntime session ended up with (``det``, ``cls``, ``rec``)."""
        e = self._engine  # RapidOCR 1.4.4 names the OrtInferSession ``infer`` in det/cls, ``session`` in rec
        parts = {"det": e.text_det.infer, "cls": e.text_cls.infer, "rec": e.text_rec.session}
        return {k: p.session.get_session_options().intra_op_num_threads for k, p in parts.items()}

    def close(self) -> None:
        """Nothing to release (kept for symmetry with the subprocess backend)."""


class PaddleOcr:
    """PaddleOCR run in a subprocess, usually from its own venv, with local model folders only.

    Args:
        python: interpreter that has ``paddleocr`` + ``paddlepaddle`` (empty: this interpreter).
        det_model_dir: local text-detection inference folder (required: nothing is downloaded).
        rec_model_dir: local text-recognition inference folder (required).
        cls_model_dir: local angle-classifier folder (only with ``use_cls``).
        det_model_name: model name of ``det_model_dir`` for PaddleOCR >= 3 (e.g. ``PP-OCRv5_mobile_det``).
        rec_model_name: model name of ``rec_model_dir`` for PaddleOCR >= 3.
        use_cls: run the angle classifier.
        lang: PaddleOCR ``lang`` (2.x).
        start_timeout: seconds the worker may take to load its models before it is killed.
        timeout: seconds one image may take.
    """

    def __init__(self, python: str = "", det_model_dir: str = "", rec_model_dir: str = "",
                 cls_model_dir: str = "", det_model_name: str = "", rec_model_name: str = "",
                 use_cls: bool = False, lang: str = "en", start_timeout: float = 120.0,
                 timeout: float = 60.0) -> None:
        hint = ("PaddleOCR would otherwise try to download its models; offline that fails or loops. "
                "Point it at local inference folders (see docs/region-stages.md).")
        if not det_model_dir:
            raise ModelUnavailable(f"ocr.paddleocr.det_model_dir is required for ocr.backend=paddleocr. {hint}")
        if not rec_model_dir:
            raise ModelUnavailable(f"ocr.paddleocr.rec_model_dir is required for ocr.backend=paddleocr. {hint}")
        check_local_file(det_model_dir, "ocr.paddleocr.det_model_dir", "dir")
        check_local_file(rec_model_dir, "ocr.paddleocr.rec_model_dir", "dir")
        if use_cls:
            check_local_file(cls_model_dir, "ocr.paddleocr.cls_model_dir", "dir")
        self.python = python or sys.executable
        if not Path(self.python).is_file():
            raise ModelUnavailable(f"ocr.paddleocr.python={python!r}: no such interpreter")
        self.timeout = timeout
        args = {"det_model_dir": det_model_dir, "rec_model_dir": rec_model_dir, "cls_model_dir": cls_model_dir,
                "det_model_name": det_model_name, "rec_model_name": rec_model_name, "use_cls": use_cls,
                "lang": lang}
        env = {**os.environ, "PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK": "True", "HF_HUB_OFFLINE": "1",
               "PYTHONUNBUFFERED": "1"}
        self._tmp = tempfile.TemporaryDirectory(prefix="regionset-paddle-")
        self._log = Path(self._tmp.name) / "worker.log"  # a file, not a pipe: paddle logs a lot
        with open(self._log, "w") as log:
            self._proc = subprocess.Popen(
                [self.python, str(WORKER), json.dumps(args)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=log, env=env, text=True, start_new_session=True)
        hello = self._read(start_timeout, "start")
        if "fatal" in hello:
            self.close()
            raise ModelUnavailable(f"ocr.backend=paddleocr ({self.python}): {hello['fatal']}")
        self.model_id = f"paddleocr-{hello.get('version', '?')}:{Path(det_model_dir).name}+{Path(rec_model_dir).name}"
        self._n = 0

    def _read(self, timeout: float, what: str) -> dict:
        sel = selectors.DefaultSelector()
        sel.register(self._proc.stdout, selectors.EVENT_READ)
        ready = sel.select(timeout)
        sel.close()
        if not ready:
            self.close()
            raise ModelUnavailable(f"ocr.backend=paddleocr: the worker did not answer ({what}) within {timeout:.0f} s; killed")
        line = self._proc.stdout.readline()
        if not line:
            self._proc.wait()
            err = self._log.read_text(errors="replace")[-2000:]
            self.close()
            raise ModelUnavailable(f"ocr.backend=paddleocr: the worker exited ({what}): {err.strip()}")
        return json.loads(line)

    def __call__(self, image: np.ndarray) -> list[TextLine]:
        """Read one RGB uint8 image (sent to the worker as a PNG file)."""
        from PIL import Image

        self._n += 1
        path = Path(self._tmp.name) / f"{self._n}.png"
        Image.fromarray(image).save(path, compress_level=1)
        self._proc.stdin.write(json.dumps({"path": str(path)}) + "\n")
        self._proc.stdin.flush()
        reply = self._read(self.timeout, "image")
        path.unlink(missing_ok=True)
        if "error" in reply:
            raise RuntimeError(f"paddleocr: {reply['error']}")
        return [TextLine(np.asarray(q, dtype=np.float32).reshape(4, 2), t, float(s)) for q, t, s in reply["lines"]]

    def close(self) -> None:
        """Stop the worker (its whole process group) and remove temp files."""
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            try:
                proc.stdin.close()
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, 9)
                proc.wait()
        if getattr(self, "_tmp", None) is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __del__(self) -> None:
        self.close()

