"""The registry: offline defaults, names vs local paths, and failures that name the config option."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from regionset import models  # noqa: F401
from regionset.models.clip_registry import TINY_CLIP, clip_embed_dim, resolve_clip
from regionset.models.registry import ModelUnavailable, detector_family, resolve_detector

ROOT = Path(__file__).resolve().parents[2]


def _env_after_import(extra: dict[str, str]) -> dict[str, str]:
    """The environment a fresh interpreter has after ``import regionset.models``, starting from a clean one."""
    names = ("YOLO_OFFLINE", "HF_HUB_OFFLINE", "YOLO_AUTOINSTALL", "NO_ALBUMENTATIONS_UPDATE",
             "YOLO_CONFIG_DIR", "MPLCONFIGDIR", "WANDB_MODE")
    env = {k: v for k, v in os.environ.items() if k not in names and k != "REGIONSET_ONLINE"}
    code = f"import json, os, regionset.models; print(json.dumps({{k: os.environ.get(k) for k in {names!r}}}))"
    out = subprocess.run([sys.executable, "-c", code], env={**env, **extra}, capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return json.loads(out.stdout)


def test_importing_models_sets_offline_defaults():
    got = _env_after_import({})
    assert got["YOLO_OFFLINE"] == "1" and got["HF_HUB_OFFLINE"] == "1"
    assert got["YOLO_AUTOINSTALL"] == "False" and got["NO_ALBUMENTATIONS_UPDATE"] == "1"
    assert got["WANDB_MODE"] == "disabled"
    assert got["YOLO_CONFIG_DIR"] and got["MPLCONFIGDIR"]


def test_online_switch_leaves_network_alone_and_user_values_win():
    got = _env_after_import({"REGIONSET_ONLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "0"})
    assert got["YOLO_OFFLINE"] is None and got["HF_HUB_OFFLINE"] is None
    assert got["NO_ALBUMENTATIONS_UPDATE"] == "0"  # a value the user exported is kept


def test_detector_name_needing_download_fails_offline_naming_option(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.delenv("REGIONSET_ONLINE", raising=False)
    t0 = time.monotonic()
    with pytest.raises(ModelUnavailable, match=r"detect\.ultralytics\.model.*local \.pt or \.onnx"):
        resolve_detector("yolo11n.pt")
    assert time.monotonic() - t0 < 1


def test_detector_local_file_and_weights_dir(monkeypatch, tmp_path):
    f = tmp_path / "yolo11n.pt"
    f.write_bytes(b"x")
    assert resolve_detector(str(f)).source == str(f)
    monkeypatch.setenv("REGIONSET_WEIGHTS", str(tmp_path))
    r = resolve_detector("yolo11n.pt")
    assert r.source == str(f) and not r.random_weights and r.family == "yolo"


def test_detector_yaml_is_random_weights_and_bad_names_fail():
    assert resolve_detector("yolo11n.yaml").random_weights
    with pytest.raises(ModelUnavailable, match="no such file"):
        resolve_detector("/nowhere/model.onnx")
    with pytest.raises(ModelUnavailable, match="known name"):
        resolve_detector("not-a-model.pt")
    with pytest.raises(ModelUnavailable, match="detect.ultralytics.model is empty"):
        resolve_detector("")


def test_detector_families():
    assert detector_family("FastSAM-s.pt") == "fastsam"
    assert detector_family("/w/sam2.1_b.pt") == "sam"
    assert detector_family("/w/custom-world.onnx") == "world"
    assert detector_family("/w/best.onnx") == "yolo"
    assert detector_family("/w/best.onnx", "sam") == "sam"


def test_clip_tiny_config_registered_and_tags_fail_offline(monkeypatch):
    assert clip_embed_dim(TINY_CLIP) == 256
    assert resolve_clip(TINY_CLIP, "none").pretrained is None
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.delenv("REGIONSET_ONLINE", raising=False)
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    import open_clip  # noqa: F401  (its import, seconds, is not what the timing below is about)

    t0 = time.monotonic()
    with pytest.raises(ModelUnavailable, match=r"embed\.pretrained.*local open_clip checkpoint"):
        resolve_clip("ViT-B-32", "laion2b_s34b_b79k")
    assert time.monotonic() - t0 < 2
    with pytest.raises(ModelUnavailable, match="neither a file nor a pretrained tag"):
        resolve_clip("ViT-B-32", "no-such-tag")
    with pytest.raises(ModelUnavailable, match="embed.model"):
        clip_embed_dim("NoSuchModel")
