"""Object detectors run by ultralytics: YOLO (incl. YOLO-World), FastSAM and SAM -> boxes.

The model comes from ``regionset.models.registry.resolve_detector``: a local ``.pt``/``.onnx``, a known name
(downloaded only where allowed) or a model ``.yaml`` (random weights, for wiring tests). Images are
predicted in batches of ``batch_size``; ultralytics returns boxes in the input image's pixels.
SAM-family models have no classes: they run in "segment everything" mode and each mask's box is a
region (the RICE recipe: SAM masks -> boxes); this is slow on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from regionset.common import threads as worker_threads
from regionset.models.registry import ResolvedDetector, pick_device, resolve_detector


@dataclass(frozen=True)
class Detections:
    """One image's detections: ``boxes`` N x 4 (x0 y0 x1 y1, float32), ``scores`` N, ``classes`` N names."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: list[str | None]


def _build(resolved: ResolvedDetector):
    if resolved.family == "fastsam":
        from ultralytics import FastSAM

        return FastSAM(resolved.source)
    if resolved.family == "sam":
        from ultralytics import SAM

        return SAM(resolved.source)
    from ultralytics import YOLO

    return YOLO(resolved.source, task="detect")


class UltralyticsDetector:
    """A batched ultralytics predictor.

    Args:
        model: see ``regionset.models.registry.resolve_detector``.
        family: ``auto`` (from the file name), ``yolo``, ``world``, ``fastsam`` or ``sam``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        imgsz: inference size (longest side, letterboxed).
        conf: confidence threshold.
        iou: NMS IoU threshold.
        classes: keep only these class ids (empty: all).
        max_det: detections kept per image.
        half: fp16 inference (CUDA only).
        threads: torch and onnxruntime threads (0 = this worker's thread budget, already applied to
            torch by the stage; ``regionset.common.threads.current()``).
    """

    def __init__(self, model: str, family: str = "auto", device: str = "auto", imgsz: int = 640,
                 conf: float = 0.25, iou: float = 0.7, classes: Sequence[int] = (), max_det: int = 100,
                 half: bool = True, threads: int = 0) -> None:
        import torch

        if threads > 0:
            torch.set_num_threads(threads)
        self.resolved = resolve_detector(model, family)
        self.model_id = self.resolved.model_id
        self.random_weights = self.resolved.random_weights
        self.device = pick_device(device)
        self.model = _build(self.resolved)
        self._kw = {"imgsz": imgsz, "conf": conf, "iou": iou, "max_det": max_det, "verbose": False,
                    "device": self.device}
        if half and self.device.startswith("cuda"):
            from ultralytics.cfg import DEFAULT_CFG_DICT

            # ultralytics >= 8.4 takes ``quantize=16``; ``half`` is its deprecated alias
            self._kw.update({"quantize": 16} if "quantize" in DEFAULT_CFG_DICT else {"half": True})
        if classes:
            self._kw["classes"] = list(classes)
        if self.resolved.family == "sam":
            self._kw.pop("classes", None)
        self.threads = threads or worker_threads.current()
        if str(self.resolved.source).endswith(".onnx") and self.device == "cpu":
            self.model.predict(np.zeros((32, 32, 3), np.uint8), **self._kw)  # builds ultralytics' session
            self._budget_onnx_session()

    def _budget_onnx_session(self) -> None:
        """Rebuild ultralytics' onnxruntime session with the thread budget (ultralytics 8.4 passes no
        SessionOptions, so onnxruntime would start one thread per core in every worker)."""
        import onnxruntime as ort

        backend = self.model.predictor.model.backend
        session = backend.session
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = self.threads
        backend.session = ort.InferenceSession(session._model_path, opts, providers=session.get_providers())

    def onnx_threads(self) -> int | None:
        """The intra-op threads of the onnxruntime session (None for torch models)."""
        backend = getattr(getattr(getattr(self.model, "predictor", None), "model", None), "backend", None)
        session = getattr(backend, "session", None)
        return session.get_session_options().intra_op_num_threads if session is not None else None

    def __call__(self, images: Sequence[np.ndarray], batch_size: int = 8) -> list[Detections]:
        """Detect objects in RGB uint8 images; one ``Detections`` per image, in order."""
        out: list[Detections] = []
        for i in range(0, len(images), batch_size):
            chunk = [np.ascontiguousarray(im[:, :, ::-1]) for im in images[i:i + batch_size]]  # ultralytics wants BGR
            if self.resolved.family == "sam":
                results = [self.model.predict(im, **self._kw)[0] for im in chunk]
            else:
                results = self.model.predict(chunk, **self._kw)
            out.extend(self._convert(r) for r in results)
        return out

    def _convert(self, r) -> Detections:
        if r.boxes is None or len(r.boxes) == 0:
            if r.masks is not None and len(r.masks):  # masks without boxes: box each mask
                return _mask_boxes(r.masks.data.cpu().numpy(), r.orig_shape)
            return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), [])
        boxes = r.boxes.xyxy.cpu().numpy().astype(np.float32)
        scores = r.boxes.conf.cpu().numpy().astype(np.float32)
        cls = r.boxes.cls.cpu().numpy().astype(int)
        names = r.names or {}
        classes = [names.get(int(c), str(int(c))) if self.resolved.family in ("yolo", "world") else None for c in cls]
        return Detections(boxes, scores, classes)


def _mask_boxes(masks: np.ndarray, shape: tuple[int, int]) -> Detections:
    """Boxes of binary masks (N x h x w), scaled to the original image ``shape`` (H, W)."""
    n, h, w = masks.shape
    sy, sx = shape[0] / h, shape[1] / w
    boxes, scores = [], []
    for m in masks > 0.5:
        ys, xs = np.nonzero(m)
        if len(xs) == 0:
            continue
        boxes.append([xs.min() * sx, ys.min() * sy, (xs.max() + 1) * sx, (ys.max() + 1) * sy])
        scores.append(1.0)
    return Detections(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32),
                      [None] * len(boxes))
