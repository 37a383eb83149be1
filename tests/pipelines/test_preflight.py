"""Preflight and ``regionset doctor``: each mistake exits 2 with one line naming the config key,
before the build takes the lock or writes anything. No services needed (see test_preflight_cluster.py)."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

import pytest

from regionset.pipelines.cli import main
from regionset.pipelines.config import load_config
from regionset.pipelines.preflight.models import file_problem, model_checks
from regionset.pipelines.preflight.run import check_disk, run_preflight


def _build(capsys, tmp_path, *overrides: str, debug: bool = False) -> tuple[int, list[str]]:
    """Run ``regionset build`` in-process with a config in ``tmp_path``; (exit code, stderr lines)."""
    cfg = tmp_path / "build.yaml"
    cfg.write_text(f"output: {tmp_path / 'out'}\ninput:\n  path: {tmp_path / 'urls.txt'}\nprogress: false\n")
    (tmp_path / "urls.txt").write_text("http://127.0.0.1:9/a.jpg\n")
    rc = main(["build", str(cfg), *overrides, *(["--debug"] if debug else [])])
    err = capsys.readouterr().err
    return rc, [ln for ln in err.splitlines() if ln.strip()]


def _assert_fails(rc: int, lines: list[str], key: str) -> None:
    print(lines)
    assert rc == 2
    assert len(lines) == 1 and key in lines[0], lines


def test_missing_detector_file_exits_2_before_the_lock(capsys, tmp_path):
    rc, lines = _build(capsys, tmp_path, "detect.backend=ultralytics",
                       f"detect.ultralytics.model={tmp_path}/w/yolo11n.pt")
    _assert_fails(rc, lines, "detect.ultralytics.model")
    assert not (tmp_path / "out").exists()  # nothing written, no lock taken


@pytest.mark.parametrize("key", ["ocr.rapidocr.det_model", "embed.pretrained"])
def test_unloadable_model_file_names_its_key(capsys, tmp_path, key):
    bad = tmp_path / ("bad.onnx" if key.startswith("ocr") else "bad.bin")
    bad.write_text("not a model")
    rc, lines = _build(capsys, tmp_path, f"{key}={bad}")
    _assert_fails(rc, lines, key)


def test_model_file_checks():
    shipped = Path(importlib.util.find_spec("rapidocr_onnxruntime").origin).parent
    det = next(shipped.rglob("*det*.onnx"))  # the PP-OCRv4 model in the wheel: a real ONNX file
    assert file_problem(str(det)) is None
    assert file_problem("/nonexistent/model.pt") == "no such file"


def test_torch_checkpoint_header(tmp_path):
    good = tmp_path / "w.pt"
    with zipfile.ZipFile(good, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"<html>404</html>")
    assert file_problem(str(good)) is None
    assert "not a PyTorch checkpoint" in file_problem(str(bad))


def test_unwritable_output_names_output(capsys, tmp_path):
    (tmp_path / "a-file").write_text("x")
    rc, lines = _build(capsys, tmp_path, f"output={tmp_path / 'a-file' / 'out'}")
    _assert_fails(rc, lines, "output=")


@pytest.mark.parametrize("executor,module", [("ray", "ray"), ("spark", "pyspark")])
def test_missing_extra_prints_the_pip_command(capsys, tmp_path, monkeypatch, executor, module):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))
    rc, lines = _build(capsys, tmp_path, f"executor.name={executor}")
    _assert_fails(rc, lines, "executor.name=")
    assert f"-m pip install 'regionset[{executor}]'" in lines[0]


def test_debug_shows_the_stack_trace(capsys, tmp_path):
    rc, lines = _build(capsys, tmp_path, f"ocr.rapidocr.det_model={tmp_path}/none.onnx", debug=True)
    assert rc == 2 and any("Traceback" in ln for ln in lines) and "ocr.rapidocr.det_model" in lines[-1]


def test_disk_estimate_fails_when_free_space_is_short(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    (tmp_path / "urls.txt").write_text("http://example.com/a.jpg\n" * 1000)
    cfg = load_config(None, [f"output={tmp_path / 'out'}", f"input.path={tmp_path / 'urls.txt'}"])
    assert check_disk(cfg).status == "ok"
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 1000, 1000))
    got = check_disk(cfg)
    print(got)
    assert got.status == "fail" and got.key == "output" and "GB needed" in got.detail


def test_defaults_pass_preflight(tmp_path):
    checks = run_preflight(load_config(None, [f"output={tmp_path / 'out'}"]))
    assert {c.name for c in checks} >= {"executor extra", "output writable", "embed model"}
    assert not (tmp_path / "out").exists()


def test_doctor_table_and_exit_code(capsys, tmp_path):
    assert main(["doctor", f"output={tmp_path / 'out'}"]) == 0
    good = capsys.readouterr().out
    assert "torch CUDA" in good and "faiss GPU" in good and "onnxruntime GPU" in good and "executor" in good
    assert main(["doctor", f"output={tmp_path / 'out'}", f"ocr.rapidocr.rec_model={tmp_path}/missing.onnx"]) == 1
    bad = capsys.readouterr().out
    print(bad)
    assert "fail" in bad and "ocr model" in bad
    failed = [c for c in model_checks(load_config(None, [f"ocr.rapidocr.rec_model={tmp_path}/missing.onnx"]))
              if c.status == "fail"]  # the key, which the table may wrap
    assert [c.key for c in failed] == ["ocr.rapidocr.rec_model"]


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")
def test_silent_port_fails_after_connect_timeout(tmp_path):
    """A port that accepts TCP but never answers as Ray gives up after executor.connect_timeout."""
    import socket

    from regionset.pipelines.preflight.cluster import ray_checks

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        cfg = load_config(None, ["executor.name=ray", f"executor.ray.address=127.0.0.1:{port}",
                                 "executor.connect_timeout=3", f"output={tmp_path}"])
        got = list(ray_checks(cfg))
    print(got)
    assert got[-1].status == "fail" and got[-1].key == "executor.ray.address"
    assert "did not answer" in got[-1].detail or "no Ray answer" in got[-1].detail


def test_ocr_device_without_its_provider_fails_preflight_in_one_line():
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    checks = {c.key: c for c in model_checks(load_config(None, ["ocr.device=cuda:1"]))}
    bad = checks["ocr.device"]
    assert bad.status == "fail" and "\n" not in bad.detail and "CUDAExecutionProvider" in bad.detail
    assert {c.key: c for c in model_checks(load_config(None, []))}["ocr.device"].status == "ok"
