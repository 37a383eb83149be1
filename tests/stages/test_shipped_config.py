"""Relative model paths and names found in ``$REGIONSET_WEIGHTS`` travel to workers as the absolute
files the driver resolved (issue 32), while the config hash stays the one of the config as written
(local builds and their markers are unchanged)."""

from __future__ import annotations

import pickle

from regionset.stages.assign import AssignConfig, AssignStage
from regionset.stages.detect import DetectConfig, DetectStage, UltralyticsConfig
from regionset.stages.embed import EmbedConfig, EmbedStage
from regionset.stages.ocr import OcrConfig, OcrStage, RapidOcrConfig


def test_relative_paths_and_bare_names_ship_absolute_and_hashes_do_not_change(tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "yolo11n.pt").write_bytes(b"PK\x03\x04 not really")
    monkeypatch.setenv("REGIONSET_WEIGHTS", str(weights))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "det.onnx").write_bytes(b"x")
    (tmp_path / "ckpt.bin").write_bytes(b"x")
    (tmp_path / "tok").mkdir()
    detect = DetectStage(DetectConfig(backend="ultralytics", ultralytics=UltralyticsConfig(model="yolo11n.pt")))
    embed = EmbedStage(EmbedConfig(pretrained="ckpt.bin"))
    ocr = OcrStage(OcrConfig(rapidocr=RapidOcrConfig(det_model="det.onnx")))
    assign = AssignStage(AssignConfig(kmeans_dir=str(tmp_path / "kmeans")))
    assign = AssignStage(AssignConfig(kmeans_dir=str(tmp_path / "kmeans"), tokenizer=type(assign.config.tokenizer)(hf_path="tok")))
    before = [s.config_hash(tmp_path) for s in (detect, embed, ocr)]
    shipped = [pickle.loads(pickle.dumps(s)) for s in (detect, embed, ocr, assign)]
    assert shipped[0].config.ultralytics.model == str(weights / "yolo11n.pt")
    assert shipped[1].config.pretrained == str(tmp_path / "ckpt.bin")
    assert shipped[2].config.rapidocr.det_model == str(tmp_path / "det.onnx")
    assert shipped[3].config.tokenizer.hf_path == str(tmp_path / "tok")
    assert [s.config_hash(tmp_path) for s in (detect, embed, ocr)] == before  # the driver's hashes
    # names that are not local files travel as written
    assert pickle.loads(pickle.dumps(EmbedStage(EmbedConfig()))).config == EmbedConfig()
    assert pickle.loads(pickle.dumps(DetectStage())).config == DetectConfig()
