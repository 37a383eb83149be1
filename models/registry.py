"""The model registry: every model is a known name or a local path (docs/region-stages.md).

A name that needs a download works where the internet is reachable and downloads are allowed
(``REGIONSET_ONLINE=1``); otherwise it fails at once with ``ModelUnavailable``, whose message names
the config option that takes a local file. Nothing here imports torch, ultralytics or open_clip at
module level: resolving a name is cheap and safe in the driver; building happens in ``setup()``.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from regionset import models  # noqa: F401  (offline environment defaults, before any model library is imported)

# -- detectors (ultralytics) --------------------------------------------------------------------
PROPOSER = "felzenszwalb"
DETECTOR_FAMILIES = ("yolo", "world", "fastsam", "sam")
_YOLO_SIZES = "nsmlx"
KNOWN_DETECTORS: dict[str, str] = {
    **{f"yolo11{s}.pt": "yolo" for s in _YOLO_SIZES},
    **{f"yolov8{s}.pt": "yolo" for s in _YOLO_SIZES},
    **{f"yolo12{s}.pt": "yolo" for s in _YOLO_SIZES},
    **{f"yolov8{s}-worldv2.pt": "world" for s in "smlx"},
    "FastSAM-s.pt": "fastsam", "FastSAM-x.pt": "fastsam",
    "sam_b.pt": "sam", "sam_l.pt": "sam", "mobile_sam.pt": "sam",
    "sam2_t.pt": "sam", "sam2_s.pt": "sam", "sam2_b.pt": "sam", "sam2_l.pt": "sam",
    "sam2.1_t.pt": "sam", "sam2.1_s.pt": "sam", "sam2.1_b.pt": "sam", "sam2.1_l.pt": "sam",
}

class ModelUnavailable(RuntimeError):
    """A model cannot be built here (missing file, download needed while offline, missing package)."""


def downloads_allowed() -> bool:
    """True when registry names may be downloaded (``REGIONSET_ONLINE=1`` or the offline switches off)."""
    if os.environ.get("REGIONSET_ONLINE", "").lower() in ("1", "true", "yes"):
        return True
    return os.environ.get("YOLO_OFFLINE", "").lower() not in ("1", "true", "yes")


def package_version(dist: str) -> str:
    """Installed version of a distribution, or ``"?"``."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def executor_gpus() -> int | None:
    """GPUs the executor gave this process: the count in a Ray worker (``ray.get_gpu_ids()``) or a Spark
    task (its ``gpu`` resource addresses), None elsewhere (the driver, local builds). Ray no longer
    hides the GPUs of a node from a worker that reserved none, so ``auto`` must ask."""
    ray = sys.modules.get("ray")
    if ray is not None and getattr(ray, "is_initialized", lambda: False)():
        worker = getattr(getattr(ray, "_private", None), "worker", None)
        if worker is not None and worker.global_worker.mode == worker.WORKER_MODE:
            return len(ray.get_gpu_ids())
    if "pyspark" in sys.modules:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        if ctx is not None:
            gpu = ctx.resources().get("gpu")
            return len(gpu.addresses) if gpu is not None else 0
    return None


def gpu_usable() -> bool:
    """Whether ``auto`` may use a GPU here: one is visible and, in a Ray or Spark worker, given to it."""
    if executor_gpus() == 0:
        return False
    import torch

    return torch.cuda.is_available()


def pick_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is usable here (``gpu_usable``), else ``cpu``; anything else is
    returned as is."""
    if device != "auto":
        return device
    return "cuda" if gpu_usable() else "cpu"


def weight_dirs() -> list[Path]:
    """Folders searched for a weights file given by name: ``$REGIONSET_WEIGHTS`` (colon-separated),
    the working directory, and ultralytics' weights folder."""
    dirs = [Path(p) for p in os.environ.get("REGIONSET_WEIGHTS", "").split(os.pathsep) if p]
    dirs.append(Path.cwd())
    dirs.append(Path.home() / ".cache" / "regionset" / "weights")
    return dirs


def detector_family(model: str, family: str = "auto") -> str:
    """The ultralytics family of ``model`` (``yolo``, ``world``, ``fastsam``, ``sam``)."""
    if family != "auto":
        if family not in DETECTOR_FAMILIES:
            raise ModelUnavailable(f"detect.ultralytics.family: unknown family {family!r}; known: {list(DETECTOR_FAMILIES)}")
        return family
    name = Path(model).name
    if name in KNOWN_DETECTORS:
        return KNOWN_DETECTORS[name]
    low = name.lower()
    if low.startswith("fastsam"):
        return "fastsam"
    if low.startswith(("sam", "mobile_sam")):
        return "sam"
    if "world" in low:
        return "world"
    return "yolo"


@dataclass(frozen=True)
class ResolvedDetector:
    """Where an ultralytics model comes from: ``source`` is a path, a bundled ``.yaml`` or a name."""

    source: str
    family: str
    random_weights: bool
    model_id: str


def resolve_detector(model: str, family: str = "auto", option: str = "detect.ultralytics.model") -> ResolvedDetector:
    """Turn ``detect.ultralytics.model`` into something ultralytics can build without surprises.

    Args:
        model: a local ``.pt``/``.onnx``/``.engine`` path, a known name (``yolo11n.pt``, ``FastSAM-s.pt``,
            ``sam_b.pt`` ...) or an ultralytics model ``.yaml`` (random weights: wiring tests only).
        family: ``auto`` or one of ``DETECTOR_FAMILIES``.
        option: the config key named in error messages.
    """
    if not model:
        raise ModelUnavailable(f"{option} is empty: give a local .pt/.onnx path or a name such as yolo11n.pt")
    fam = detector_family(model, family)
    version = package_version("ultralytics")
    p = Path(model).expanduser()
    if p.is_file():
        return ResolvedDetector(str(p), fam, False, f"ultralytics-{version}:{p.name}")
    if model.endswith((".yaml", ".yml")):
        return ResolvedDetector(model, fam, True, f"ultralytics-{version}:{model}(random-init)")
    if len(p.parts) > 1 or model.endswith((".onnx", ".engine", ".torchscript")):
        raise ModelUnavailable(f"{option}={model!r}: no such file")
    for d in weight_dirs():
        if (d / model).is_file():
            return ResolvedDetector(str(d / model), fam, False, f"ultralytics-{version}:{model}")
    if model not in KNOWN_DETECTORS:
        raise ModelUnavailable(
            f"{option}={model!r} is neither a file nor a known name; known names: {sorted(KNOWN_DETECTORS)}")
    if not downloads_allowed():
        raise ModelUnavailable(
            f"{option}={model!r} is not on this machine and would need a download, but regionset runs "
            f"offline. Fetch the file where the internet is reachable and set {option}=/path/to/{model} "
            f"(any local .pt or .onnx), or put it in $REGIONSET_WEIGHTS, or export REGIONSET_ONLINE=1 to "
            f"let ultralytics download it.")
    return ResolvedDetector(model, fam, False, f"ultralytics-{version}:{model}")


# -- OCR ----------------------------------------------------------------------------------------
RAPIDOCR = "rapidocr"
PADDLEOCR = "paddleocr"
OCR_BACKENDS = (RAPIDOCR, PADDLEOCR)


def rapidocr_model_id(det_model: str = "", rec_model: str = "") -> str:
    """Id of the RapidOCR models in use: the PP-OCRv4 ONNX files shipped in the wheel unless overridden."""
    det = Path(det_model).name if det_model else "ch_PP-OCRv4_det_infer.onnx"
    rec = Path(rec_model).name if rec_model else "ch_PP-OCRv4_rec_infer.onnx"
    return f"rapidocr-onnxruntime-{package_version('rapidocr-onnxruntime')}:{det}+{rec}"


def check_local_file(path: str, option: str, kind: str = "file") -> str:
    """Return ``path`` if it exists (``kind`` = ``file`` or ``dir``), else fail naming ``option``."""
    p = Path(path).expanduser()
    ok = p.is_dir() if kind == "dir" else p.is_file()
    if not path or not ok:
        raise ModelUnavailable(f"{option}={path!r}: not an existing local {kind}")
    return str(p)
