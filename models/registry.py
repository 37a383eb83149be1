"""The model registry: every model is a known name or a local path (docs/region-stages.md).

A name that needs a download works where the internet is reachable and downloads are allowed
(``REGIONSET_ONLINE=1``); otherwise it fails at once with ``ModelUnavailable``, whose message names
the config option that takes a local file. Nothing here imports torch, ultralytics or open_clip at
module level: resolving a name is cheap and safe in the driver; building happens in ``setup()``.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from dataclasses import dataclass
from pathlib import Path

import models  # noqa: F401  (offline environment defaults, before any model library is imported)
from models.clip_configs import clip_config_file

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

# -- embedders (open_clip) ----------------------------------------------------------------------
TINY_CLIP = "regionset-tiny-vit"
CONFIG_DIR = Path(__file__).with_name("configs")
NO_WEIGHTS = ("", "none", "None", "random")


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


def pick_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; anything else is returned as is."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


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
            raise ModelUnavailable(f"detect.family: unknown family {family!r}; known: {list(DETECTOR_FAMILIES)}")
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


def resolve_detector(model: str, family: str = "auto", option: str = "detect.model") -> ResolvedDetector:
    """Turn ``detect.model`` into something ultralytics can build without surprises.

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


# -- open_clip ----------------------------------------------------------------------------------
_REGISTERED = False


def register_clip_configs() -> None:
    """Register regionset's own open_clip model configs (``models/configs/*.json``) once."""
    global _REGISTERED
    if _REGISTERED:
        return
    import open_clip

    open_clip.add_model_config(CONFIG_DIR)
    _REGISTERED = True


RICE_PREFIX = "rice:"
RICE_EXPORT_INFO = "rice.json"  # what a RICE export folder holds and how to load it (training/rice/export.py)
# open_clip's OpenAI CLIP preprocessing statistics: the default of every encoder regionset trains or embeds with.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def read_rice_export(folder: str | Path, option: str = "embed.model") -> tuple[str, str]:
    """Register a RICE export's open_clip config and return (open_clip model name, checkpoint path).

    Args:
        folder: an export folder (``loop.out_dir/export`` of a RICE run).
        option: the config option that named it, for the error message.
    """
    folder = Path(folder).expanduser()
    info_path = folder / RICE_EXPORT_INFO
    if not info_path.is_file():
        raise ModelUnavailable(f"{option}={str(folder)!r}: {info_path} not found; point it at the export folder "
                               "a RICE run writes (loop.out_dir/export)")
    info = json.loads(info_path.read_text())
    import open_clip

    open_clip.add_model_config(str(folder / info["open_clip_config"]))
    return info["open_clip_model"], str(folder / info["checkpoint"])


def rice_export(model: str) -> tuple[str, str]:
    """For ``rice:<folder>`` (a RICE trainer export): (open_clip model name, checkpoint path).

    Args:
        model: ``rice:`` followed by the export folder.
    """
    return read_rice_export(model[len(RICE_PREFIX):])


def clip_embed_dim(model: str) -> int:
    """Output width of an open_clip model, read from its config (no model is built)."""
    cfg = clip_config_file(model, CONFIG_DIR)  # no open_clip import (seconds) for a plain name
    if cfg is not None:
        return int(cfg["embed_dim"])
    register_clip_configs()
    import open_clip

    if model.startswith(RICE_PREFIX):
        model = rice_export(model)[0]
    cfg = open_clip.get_model_config(model)
    if cfg is None:
        raise ModelUnavailable(f"embed.model={model!r} is not an open_clip model config; "
                               f"e.g. {TINY_CLIP}, ViT-B-32, ViT-B-16 (open_clip.list_models())")
    return int(cfg["embed_dim"])


@dataclass(frozen=True)
class ResolvedClip:
    """An open_clip model and where its weights come from (None: random init)."""

    model: str
    pretrained: str | None
    model_id: str


def resolve_clip(model: str, pretrained: str, option: str = "embed.pretrained") -> ResolvedClip:
    """Check that ``model`` exists and that ``pretrained`` (tag, local checkpoint or none) is usable.

    A tag is usable offline only when its file is already in the local cache; otherwise this fails
    at once, naming ``option`` (which also takes a local checkpoint path).
    """
    clip_embed_dim(model)
    version = package_version("open_clip_torch")
    if model.startswith(RICE_PREFIX):  # a trained RICE trunk: its export carries config and weights
        name, checkpoint = rice_export(model)
        return ResolvedClip(name, checkpoint, f"rice-export:{Path(checkpoint).parent.name}:{name}")
    if pretrained in NO_WEIGHTS:
        return ResolvedClip(model, None, f"open_clip-{version}:{model}:none(random-init)")
    p = Path(pretrained).expanduser()
    if p.is_file():
        return ResolvedClip(model, str(p), f"open_clip-{version}:{model}:{p.name}")
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, pretrained)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model)
        raise ModelUnavailable(f"{option}={pretrained!r} is neither a file nor a pretrained tag of "
                               f"{model} (tags: {tags}); give a local checkpoint path or 'none'")
    if not downloads_allowed() and not _clip_cached(cfg):
        raise ModelUnavailable(
            f"{option}={pretrained!r} for {model} is not in the local cache and would need a download, "
            f"but regionset runs offline. Set {option}=/path/to/checkpoint.bin (a local open_clip "
            f"checkpoint), or export REGIONSET_ONLINE=1 where the hub is reachable.")
    return ResolvedClip(model, pretrained, f"open_clip-{version}:{model}:{pretrained}")


def _clip_cached(cfg: dict) -> bool:
    """Whether open_clip would find the tag's weights without the network."""
    if cfg.get("file"):
        return Path(cfg["file"]).is_file()
    hub = cfg.get("hf_hub", "")
    if hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return False
        repo, filename = os.path.split(hub)  # open_clip's own rule: "org/repo/" means the default file
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if filename.endswith((".bin", ".pth")):
            names.insert(0, filename[:-4] + ".safetensors")
        return any(isinstance(try_to_load_from_cache(repo, n), str) for n in names)
    url = cfg.get("url", "")
    return bool(url) and (Path.home() / ".cache" / "clip" / os.path.basename(url)).is_file()


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
