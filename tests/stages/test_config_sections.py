"""The per-backend sub-sections of ``ocr`` and ``detect``: old flat keys, and hashes unchanged by the move."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from regionset.common.typed_config import ConfigError, config_warnings
from regionset.pipelines.config import load_config
from regionset.pipelines.core.lineage import config_digest
from regionset.stages.detect import DetectStage
from regionset.stages.ocr import OcrStage

# Non-default settings touching moved keys of both backends of each stage and some shared keys.
OCR_OVERRIDES = ["ocr.backend=paddleocr", "ocr.paddle_python=/venv/bin/python", "ocr.det_model_dir=/m/det",
                 "ocr.rec_model_dir=/m/rec", "ocr.det_limit_side_len=1280", "ocr.lang=ch", "ocr.min_score=0.5",
                 "ocr.paddle_start_timeout=60", "ocr.unclip_ratio=1.8", "ocr.det_model_name=PP-OCRv5_mobile_det"]
DETECT_OVERRIDES = ["detect.backend=ultralytics", "detect.model=/m/none.pt", "detect.imgsz=1024", "detect.conf=0.3",
                    "detect.classes=[1,2]", "detect.half=false", "detect.batch_size=4", "detect.device=cpu",
                    "detect.proposer.scale=300", "detect.max_regions=10"]
NEW_SPELLING = {"ocr.paddle_python": "ocr.paddleocr.python", "ocr.paddle_start_timeout": "ocr.paddleocr.start_timeout",
                "ocr.det_model_dir": "ocr.paddleocr.det_model_dir", "ocr.rec_model_dir": "ocr.paddleocr.rec_model_dir",
                "ocr.det_limit_side_len": "ocr.rapidocr.det_limit_side_len", "ocr.lang": "ocr.paddleocr.lang",
                "ocr.unclip_ratio": "ocr.rapidocr.unclip_ratio",
                "ocr.det_model_name": "ocr.paddleocr.det_model_name",
                **{f"detect.{k}": f"detect.ultralytics.{k}"
                   for k in ("model", "imgsz", "conf", "classes", "half", "batch_size", "device")}}

# Obtained on main before the split (commit 7e73dce, flat OcrConfig/DetectConfig): load_config(None, ...)
# with no overrides / with OCR_OVERRIDES + DETECT_OVERRIDES, then Stage(cfg).config_hash(Path("/nonexistent-out"))
# (the completion markers' hash) and regionset.pipelines.core.lineage.config_digest(cfg) (regionset.yaml's config_hash).
MAIN_HASHES = {
    "ocr default": "86cdd5b9789e227f", "ocr non-default": "864bf657ffd777cf",
    "detect default": "0eb2e8f1de176c99", "detect non-default": "1ba29175dda90e68",
    "build default": "a17aafe44035b282", "build non-default": "dadb3b3bc63192e1",
}


def _new(overrides: list[str]) -> list[str]:
    out = []
    for item in overrides:
        key, value = item.split("=", 1)
        out.append(f"{NEW_SPELLING.get(key, key)}={value}")
    return out


@pytest.mark.parametrize("spelling", ["old", "new"])
def test_hashes_equal_those_of_the_flat_configs(spelling):
    out = Path("/nonexistent-out")
    overrides = OCR_OVERRIDES + DETECT_OVERRIDES
    default, other = load_config(None, []), load_config(None, overrides if spelling == "old" else _new(overrides))
    got = {
        "ocr default": OcrStage(default.ocr).config_hash(out), "ocr non-default": OcrStage(other.ocr).config_hash(out),
        "detect default": DetectStage(default.detect).config_hash(out),
        "detect non-default": DetectStage(other.detect).config_hash(out),
        "build default": config_digest(default), "build non-default": config_digest(other),
    }
    assert got == MAIN_HASHES


def test_old_keys_in_yaml_and_as_overrides_give_the_new_config_and_warn(tmp_path):
    new = load_config(None, _new(OCR_OVERRIDES + DETECT_OVERRIDES))
    assert new.ocr.paddleocr.det_model_dir == "/m/det" and new.ocr.paddleocr.python == "/venv/bin/python"
    assert new.ocr.rapidocr.det_limit_side_len == 1280 and new.detect.ultralytics.classes == (1, 2)
    assert config_warnings(new) == []
    by_override = load_config(None, OCR_OVERRIDES + DETECT_OVERRIDES)
    assert by_override == new
    warnings = config_warnings(by_override)
    assert "ocr.det_model_dir is deprecated: use ocr.paddleocr.det_model_dir" in warnings
    assert "detect.model is deprecated: use detect.ultralytics.model" in warnings
    assert len(warnings) == len(set(warnings)) == len(NEW_SPELLING)  # one per old key
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"ocr": {"det_model_dir": "/m/det", "paddle_python": "/venv/bin/python"},
                                    "detect": {"model": "/m/none.pt"}}))
    cfg = load_config(path)
    assert (cfg.ocr.paddleocr.det_model_dir, cfg.ocr.paddleocr.python, cfg.detect.ultralytics.model) == (
        "/m/det", "/venv/bin/python", "/m/none.pt")
    assert sorted(config_warnings(cfg)) == ["detect.model is deprecated: use detect.ultralytics.model",
                                            "ocr.det_model_dir is deprecated: use ocr.paddleocr.det_model_dir",
                                            "ocr.paddle_python is deprecated: use ocr.paddleocr.python"]


def test_conflicting_spellings_and_unknown_keys_error(tmp_path):
    path = tmp_path / "new.yaml"
    path.write_text(yaml.safe_dump({"ocr": {"paddleocr": {"det_model_dir": "/a"}}}))
    with pytest.raises(ConfigError, match=r"ocr\.det_model_dir .*ocr\.paddleocr\.det_model_dir"):
        load_config(path, ["ocr.det_model_dir=/b"])
    assert load_config(path, ["ocr.det_model_dir=/a"]).ocr.paddleocr.det_model_dir == "/a"
    with pytest.raises(ConfigError, match="unknown config key ocr.det_model_folder"):
        load_config(None, ["ocr.det_model_folder=/a"])
    with pytest.raises(ConfigError, match="unknown config key detect.ultralytics.modle"):
        load_config(None, ["detect.ultralytics.modle=x.pt"])


def test_config_command_prints_new_spelling_and_warns(capsys):
    from regionset.pipelines.cli import main

    assert main(["config", "ocr.det_model_dir=/m/det", "detect.imgsz=320"]) == 0
    got = capsys.readouterr()
    printed = yaml.safe_load(got.out)
    assert printed["ocr"]["paddleocr"]["det_model_dir"] == "/m/det" and "det_model_dir" not in printed["ocr"]
    assert printed["detect"]["ultralytics"]["imgsz"] == 320 and "imgsz" not in printed["detect"]
    assert got.err.splitlines() == [
        "regionset config: warning: detect.imgsz is deprecated: use detect.ultralytics.imgsz",
        "regionset config: warning: ocr.det_model_dir is deprecated: use ocr.paddleocr.det_model_dir"]


def test_init_shows_the_backend_sub_sections(capsys):
    from regionset.pipelines.cli import main

    assert main(["init", "-"]) == 0
    text = capsys.readouterr().out
    for section in ("rapidocr", "paddleocr", "ultralytics", "proposer"):
        assert f"\n  {section}:\n" in text, section
    assert "\n  # options of the ``paddleocr`` backend" in text
    assert "\n    det_model_dir: ''" in text and "\n    start_timeout: 120.0" in text
    assert "\n  det_model_dir:" not in text and "\n  paddle_python:" not in text and "\n  imgsz:" not in text


def test_build_records_and_prints_the_deprecation(tmp_path, capsys):
    from regionset.pipelines.build import begin_build
    from regionset.pipelines.core.lineage import LINEAGE_FILE

    cfg = load_config(None, [f"output={tmp_path / 'out'}", "ocr.det_model_dir=/m/det"])
    (tmp_path / "out").mkdir()
    begin_build(cfg, [])
    doc = yaml.safe_load((tmp_path / "out" / LINEAGE_FILE).read_text())
    assert doc["warnings"] == ["ocr.det_model_dir is deprecated: use ocr.paddleocr.det_model_dir"]
    assert doc["config"]["ocr"]["paddleocr"]["det_model_dir"] == "/m/det"
    assert capsys.readouterr().err.count("ocr.det_model_dir is deprecated") == 1


def test_detect_on_cuda_still_asks_executors_for_a_gpu():
    from regionset.stages.base import Resources

    yolo = "detect.backend=ultralytics"
    assert DetectStage(load_config(None, [yolo, "detect.ultralytics.device=cuda:0"]).detect).resources() == Resources(gpus=1.0)
    assert DetectStage(load_config(None, [yolo, "detect.device=cuda"]).detect).resources().gpus == 1.0  # old spelling
    # the weight-free proposer uses no GPU whatever ultralytics.device says
    assert DetectStage(load_config(None, ["detect.ultralytics.device=cuda:0"]).detect).resources().gpus == 0.0
    assert DetectStage(load_config(None, []).detect).resources().gpus == 0.0


def test_ocr_batch_images_is_not_hashed_and_device_only_when_not_default():
    out = Path("/nonexistent-out")
    default = OcrStage(load_config(None, []).ocr).config_hash(out)
    assert default == MAIN_HASHES["ocr default"]
    assert OcrStage(load_config(None, ["ocr.batch_images=16"]).ocr).config_hash(out) == default
    assert OcrStage(load_config(None, ["ocr.device=cpu"]).ocr).config_hash(out) != default
