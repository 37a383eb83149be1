"""``ocr.device`` -> onnxruntime providers; the wiring checked with a fake CUDA session (no GPU here)."""

from __future__ import annotations

import pytest

from regionset.models.ocr_device import CPU, CUDA, TENSORRT, check_device, ocr_providers, rebuild_sessions
from regionset.models.registry import ModelUnavailable

GPU_ORT = [TENSORRT, CUDA, CPU]


def test_provider_order_and_device_ids():
    assert ocr_providers("cpu", GPU_ORT, gpu=True) == [(CPU, {})]
    assert ocr_providers("auto", [CPU], gpu=True) == [(CPU, {})]
    assert ocr_providers("auto", GPU_ORT, gpu=False) == [(CPU, {})]
    assert ocr_providers("auto", GPU_ORT, gpu=True) == [(CUDA, {"device_id": 0}), (CPU, {})]
    assert ocr_providers("cuda", GPU_ORT, gpu=True) == [(CUDA, {"device_id": 0}), (CPU, {})]
    assert ocr_providers("cuda:3", GPU_ORT, gpu=True) == [(CUDA, {"device_id": 3}), (CPU, {})]
    assert ocr_providers("tensorrt:1", GPU_ORT, gpu=True) == [
        (TENSORRT, {"device_id": 1}), (CUDA, {"device_id": 1}), (CPU, {})]


def test_selected_but_unavailable_device_fails_in_one_line():
    for device, available in (("cuda", [CPU]), ("cuda:1", [CPU]), ("tensorrt", [CUDA, CPU])):
        with pytest.raises(ModelUnavailable) as e:
            ocr_providers(device, available, gpu=False)
        assert "\n" not in str(e.value) and f"ocr.device={device}" in str(e.value)
    for bad in ("gpu", "cpu:1", "auto:0", "cuda:x"):
        with pytest.raises(ValueError, match="ocr.device"):
            check_device(bad)


class FakeOrtSession:
    """Stands in for an onnxruntime session built on the CPU provider."""

    _model_path = "/models/det.onnx"

    def get_session_options(self):
        return "opts"


class FakeCudaSession:
    """A fake ``InferenceSession`` that records what it was asked for and keeps ``keeps`` providers."""

    made: list = []
    keeps: tuple = (CUDA, CPU)

    def __init__(self, path, sess_options=None, providers=(), provider_options=()):
        self.args = (path, sess_options, list(providers), list(provider_options))
        FakeCudaSession.made.append(self)

    def get_providers(self):
        return [p for p in self.args[2] if p in self.keeps]


class Wrapper:
    def __init__(self):
        self.session = FakeOrtSession()


def test_sessions_are_rebuilt_on_the_providers_with_a_fake_cuda_session():
    FakeCudaSession.made = []
    wrappers = [Wrapper(), Wrapper(), Wrapper()]  # det, cls, rec
    for worker_device, gpu_id in (("cuda", 0), ("cuda:2", 2)):  # one worker per GPU
        rebuild_sessions(wrappers, ocr_providers(worker_device, GPU_ORT, gpu=True), make_session=FakeCudaSession)
        assert all(isinstance(w.session, FakeCudaSession) for w in wrappers)
        for w in wrappers:
            path, opts, providers, options = w.session.args
            assert (path, opts, providers) == ("/models/det.onnx", "opts", [CUDA, CPU])
            assert options == [{"device_id": gpu_id}, {}]
            w.session = FakeOrtSession()
    assert len(FakeCudaSession.made) == 6
    rebuild_sessions(wrappers, [(CPU, {})], make_session=FakeCudaSession)  # CPU: nothing rebuilt
    assert len(FakeCudaSession.made) == 6


def test_a_session_that_fell_back_to_the_cpu_fails_loudly():
    FakeCudaSession.keeps = (CPU,)
    try:
        with pytest.raises(ModelUnavailable, match="did not start CUDAExecutionProvider"):
            rebuild_sessions([Wrapper()], ocr_providers("cuda", GPU_ORT, gpu=True), make_session=FakeCudaSession)
    finally:
        FakeCudaSession.keeps = (CUDA, CPU)


def test_rapidocr_on_cuda_without_onnxruntime_gpu_fails_before_loading():
    import onnxruntime

    if CUDA in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    from regionset.models.ocr import RapidOcr

    with pytest.raises(ModelUnavailable, match="ocr.device=cuda: onnxruntime has no CUDAExecutionProvider"):
        RapidOcr(device="cuda")
