"""Preflight of the model files a config names: present (through ``models/registry.py``) and loadable.

"Loadable" is checked cheaply, without building a model: an ONNX file opens in onnxruntime, a
PyTorch checkpoint is a zip archive or a pickle stream, a ``.safetensors`` file has a JSON header.
Only the steps in ``cfg.steps`` are checked.
"""

from __future__ import annotations

import json
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path

from regionset.common.storage import as_path
from regionset.models.clip_registry import clip_embed_dim, resolve_clip
from regionset.models.kmeans_index import TreeReadError, read_meta
from regionset.models.registry import PADDLEOCR, ModelUnavailable, check_local_file, resolve_detector
from regionset.pipelines.config import BuildConfig
from regionset.pipelines.preflight.checks import Check, fail, ok, warn

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
PICKLE_PROTO = 0x80  # first byte of a pickle stream (protocol >= 2): torch's legacy format


def file_problem(path: str) -> str | None:
    """Why the model file at ``path`` cannot be loaded, or None when it looks loadable.

    Args:
        path: a local model file (``.onnx``, ``.pt``/``.pth``/``.bin``/``.ckpt``, ``.safetensors``, other).
    """
    p = Path(path).expanduser()
    if not p.is_file():
        return "no such file"
    try:
        with p.open("rb") as f:
            head = f.read(8)
    except OSError as e:
        return f"cannot read it ({e.strerror or e})"
    if not head:
        return "the file is empty"
    suffix = p.suffix.lower()
    if suffix == ".onnx":
        import onnxruntime as ort

        try:
            ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf types
            return f"onnxruntime cannot load it ({str(e).splitlines()[0][:160]})"
    elif suffix in TORCH_SUFFIXES:
        if not (zipfile.is_zipfile(p) or head[0] == PICKLE_PROTO):
            return "not a PyTorch checkpoint (neither a zip archive nor a pickle)"
    elif suffix == ".safetensors":
        try:
            (size,) = struct.unpack("<Q", head)
            with p.open("rb") as f:
                f.seek(8)
                json.loads(f.read(size))
        except (struct.error, ValueError, OSError, MemoryError):
            return "not a safetensors file (bad header)"
    return None


def _file_check(name: str, key: str, path: str) -> Check:
    problem = file_problem(path)
    if problem:
        return fail(name, key, f"{key}={path!r}: {problem}; give a readable local model file")
    return ok(name, key, path)


def _detect(cfg: BuildConfig) -> Iterator[Check]:
    c = cfg.detect
    if c.backend != "ultralytics":
        yield ok("detect model", "detect.backend", f"{c.backend} (no model file)")
        return
    key = "detect.ultralytics.model"
    try:
        r = resolve_detector(c.ultralytics.model, c.ultralytics.family)
    except ModelUnavailable as e:
        yield fail("detect model", key, str(e))
        return
    if Path(r.source).is_file():
        yield _file_check("detect model", key, r.source)
    else:
        yield ok("detect model", key, r.model_id)


def _ocr(cfg: BuildConfig) -> Iterator[Check]:
    c, p, r = cfg.ocr, cfg.ocr.paddleocr, cfg.ocr.rapidocr
    if c.backend == PADDLEOCR:
        folders = [("ocr.paddleocr.det_model_dir", p.det_model_dir), ("ocr.paddleocr.rec_model_dir", p.rec_model_dir)]
        if c.use_cls:
            folders.append(("ocr.paddleocr.cls_model_dir", p.cls_model_dir))
        for key, folder in folders:
            try:
                check_local_file(folder, key, "dir")
            except ModelUnavailable as e:
                yield fail("ocr model", key, f"{e}; ocr.backend=paddleocr needs local inference folders")
                return
        if p.python and not Path(p.python).is_file():
            yield fail("ocr model", "ocr.paddleocr.python", f"ocr.paddleocr.python={p.python!r}: no such interpreter")
            return
        yield ok("ocr model", "ocr.paddleocr.det_model_dir", f"{p.det_model_dir} + {p.rec_model_dir}")
        return
    yield _ocr_device(c.device)
    named = [(k, v) for k, v in (("ocr.rapidocr.det_model", r.det_model), ("ocr.rapidocr.rec_model", r.rec_model)) if v]
    for key, path in named:
        yield _file_check("ocr model", key, path)
    if not named:
        yield ok("ocr model", "ocr.backend", "PP-OCRv4 ONNX shipped in rapidocr-onnxruntime")


def _ocr_device(device: str) -> Check:
    """``ocr.device`` names an execution provider this onnxruntime has (``models/ocr_device.py``)."""
    from regionset.models.ocr_device import CUDA, available_providers, gpu_visible, ocr_providers

    available = available_providers()
    try:
        chosen = ocr_providers(device, available, device == "auto" and CUDA in available and gpu_visible())
    except (ModelUnavailable, ValueError) as e:
        return fail("ocr device", "ocr.device", str(e))
    return ok("ocr device", "ocr.device", f"{device}: " + " > ".join(p for p, _ in chosen))


def _embed(cfg: BuildConfig) -> Iterator[Check]:
    c = cfg.embed
    try:
        r = resolve_clip(c.model, c.pretrained)
    except ModelUnavailable as e:
        key = "embed.model" if str(e).startswith("embed.model") else "embed.pretrained"
        yield fail("embed model", key, str(e))
        return
    if r.pretrained and Path(r.pretrained).expanduser().is_file():
        key = "embed.model" if c.model.startswith("rice:") else "embed.pretrained"
        yield _file_check("embed model", key, r.pretrained)
    else:
        yield ok("embed model", "embed.model", r.model_id)


def _assign(cfg: BuildConfig) -> Iterator[Check]:
    tok = cfg.assign.tokenizer
    if tok.name == "hf":
        try:
            check_local_file(tok.hf_path, "assign.tokenizer.hf_path", "dir")
        except ModelUnavailable as e:
            yield fail("tokenizer", "assign.tokenizer.hf_path", f"{e}; give the local tokenizer folder")
            return
    if cfg.assign.kmeans_dir:  # a fitted tree: a folder or an object-store prefix (its kmeans.json)
        try:
            meta = read_meta(as_path(cfg.assign.kmeans_dir))
        except TreeReadError as e:
            yield fail("k-means tree", "assign.kmeans_dir", str(e))
            return
        if meta is None:
            yield fail("k-means tree", "assign.kmeans_dir",
                       f"assign.kmeans_dir={cfg.assign.kmeans_dir!r}: no kmeans.json there (no fitted tree); "
                       "leave it empty to use OUT/kmeans")
            return
    yield ok("tokenizer", "assign.tokenizer.name", tok.name)


def _kmeans(cfg: BuildConfig) -> Iterator[Check]:
    """An explicit ``kmeans.fit: local`` with a sample far over ``kmeans.local_max_mib``: a warning."""
    from regionset.pipelines.kmeans.fit_choice import local_warning

    kc = cfg.kmeans
    if kc.fit != "local":
        yield ok("k-means fit", "kmeans.fit", f"{kc.fit} (auto: local up to kmeans.local_max_mib="
                 f"{kc.local_max_mib:g} MiB of float32 sample)" if kc.fit == "auto" else kc.fit)
        return
    try:
        dim = clip_embed_dim(cfg.embed.model)
    except (ModelUnavailable, OSError, ValueError):  # the embed check names the key
        return
    w = local_warning(kc, dim)
    yield warn("k-means fit", "kmeans.fit", w) if w else ok("k-means fit", "kmeans.fit", "local")


def model_checks(cfg: BuildConfig) -> Iterator[Check]:
    """Checks of every model file and folder that the steps of ``cfg`` name.

    Args:
        cfg: the resolved build config.
    """
    for step, checks in (("detect", _detect), ("ocr", _ocr), ("embed", _embed), ("fit_kmeans", _kmeans),
                         ("assign", _assign)):
        if step in cfg.steps:
            yield from checks(cfg)


def model_files(cfg: BuildConfig) -> dict[str, str]:
    """The model files the steps of ``cfg`` load, resolved here as a stage resolves them (a bare name
    through the registry's search folders, a relative path against the working folder): config key ->
    absolute path, the path the stages ship to workers (``Stage.shipped_config``). What cannot be
    resolved is left out (``model_checks`` fails on it); the worker probe hashes these paths on every
    node and compares with the driver's.

    Args:
        cfg: the resolved build config.
    """
    found: dict[str, str] = {}
    if "detect" in cfg.steps and cfg.detect.backend == "ultralytics":
        try:
            found["detect.ultralytics.model"] = resolve_detector(cfg.detect.ultralytics.model,
                                                                 cfg.detect.ultralytics.family).source
        except ModelUnavailable:
            pass
    if "embed" in cfg.steps:
        try:
            r = resolve_clip(cfg.embed.model, cfg.embed.pretrained)
            if r.pretrained:
                found["embed.model" if cfg.embed.model.startswith("rice:") else "embed.pretrained"] = r.pretrained
        except ModelUnavailable:
            pass
    if "ocr" in cfg.steps and cfg.ocr.backend != PADDLEOCR:
        found.update((k, v) for k, v in (("ocr.rapidocr.det_model", cfg.ocr.rapidocr.det_model),
                                         ("ocr.rapidocr.rec_model", cfg.ocr.rapidocr.rec_model)) if v)
    return {k: str(Path(v).expanduser().resolve()) for k, v in found.items() if Path(v).expanduser().is_file()}
