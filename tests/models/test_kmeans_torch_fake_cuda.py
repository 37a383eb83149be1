"""The torch k-means backend against a FAKE CUDA device (no GPU here): ``torch.cuda.is_available`` and
``torch.cuda.mem_get_info`` are replaced by fakes that report a stated memory budget. Checks the block
sizing against that budget, the backend choice of ``kmeans.backend: auto``, and that
``kmeans.device: cpu`` keeps every tensor off the GPU even when one is (fakely) visible."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regionset.models import kmeans_torch
from regionset.models.kmeans_torch import BLOCK_FRACTION, MAX_BLOCK_ROWS, block_rows, free_bytes
from regionset.pipelines.kmeans import backend as backend_mod
from regionset.pipelines.kmeans.backend import Resolved, resolve_backend
from regionset.pipelines.kmeans.config import KMeansConfig
from regionset.pipelines.kmeans.fit import fit_tree
from regionset.pipelines.kmeans.lloyd_torch import plan

GIB = 1 << 30
FAKE_FREE = 20 * GIB  # the stated budget: a 24 GiB card with 20 GiB free
FAKE_TOTAL = 24 * GIB


@pytest.fixture
def fake_cuda(monkeypatch):
    """A fake CUDA device: visible, ``FAKE_FREE`` bytes free; records every memory query."""
    queries: list[object] = []

    def mem_get_info(device=None):
        queries.append(device)
        return FAKE_FREE, FAKE_TOTAL

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "fake-cuda")
    return queries


def test_block_sizing_fits_the_fake_devices_budget(fake_cuda):
    free = free_bytes("cuda")
    assert free == FAKE_FREE and fake_cuda  # read from the (fake) device
    for k, d in ((65_536, 64), (65_536, 768), (1_000_000, 768), (300, 64)):
        resident = 4 * k * (d + 1)
        per_row = 4 * k + 4 * d + 16
        rows = block_rows(k, d, free)
        assert 1 <= rows <= MAX_BLOCK_ROWS
        assert resident + rows * per_row <= resident + (free - resident) * BLOCK_FRACTION  # the block fits
        if rows < MAX_BLOCK_ROWS:  # and is as large as the budget allows
            assert resident + (rows + 1) * per_row > resident + (free - resident) * BLOCK_FRACTION
    # 65,536 × 768 centroids: 192 MiB resident, 256 KiB of scores per row -> 40,201 rows per block
    assert block_rows(65_536, 768, free) == int((FAKE_FREE - 4 * 65_536 * 769) * 0.5) // (4 * 65_536 + 4 * 768 + 16)


def test_lloyd_keeps_the_points_on_the_device_only_when_they_fit(fake_cuda):
    free = free_bytes("cuda")
    on, rows = plan(1_000_000, 65_536, 64, free)  # 244 MiB of points: resident
    assert on and rows >= 1
    resident = 12 * 65_536 * 65 + 4 * 1_000_000 * 64
    assert resident + rows * (4 * 65_536 + 4 * 64 + 24) <= resident + (free - resident) * BLOCK_FRACTION
    on, rows = plan(16_777_216, 65_536, 768, free)  # 48 GiB of points: streamed block by block
    assert not on and rows >= 1
    with pytest.raises(MemoryError, match="centroids"):
        block_rows(10_000_000, 768, free)  # 29 GiB of centroids alone


def test_auto_picks_torch_on_cuda_when_faiss_sees_no_gpu(fake_cuda, monkeypatch):
    monkeypatch.setattr(backend_mod, "_faiss_gpus", lambda: 0)
    assert resolve_backend(KMeansConfig()) == Resolved("torch", "cuda", 1)
    assert resolve_backend(KMeansConfig(backend="torch")) == Resolved("torch", "cuda", 1)
    assert resolve_backend(KMeansConfig(device="cpu")) == Resolved("faiss", "cpu", 0)
    assert resolve_backend(KMeansConfig(backend="torch", device="cpu")) == Resolved("torch", "cpu", 0)
    monkeypatch.setattr(backend_mod, "_faiss_gpus", lambda: 2)  # a faiss GPU build seeing 2 GPUs wins
    assert resolve_backend(KMeansConfig()) == Resolved("faiss", "cpu", 2)


def test_no_gpu_anywhere_is_faiss_on_the_cpu_and_device_gpu_fails_loudly(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(backend_mod, "_faiss_gpus", lambda: 0)
    assert resolve_backend(KMeansConfig()) == Resolved("faiss", "cpu", 0)
    with pytest.raises(RuntimeError, match="kmeans.device=gpu"):
        resolve_backend(KMeansConfig(device="gpu"))
    with pytest.raises(RuntimeError, match="torch sees no CUDA"):
        resolve_backend(KMeansConfig(backend="torch", device="gpu"))


def test_device_cpu_keeps_everything_off_the_fake_gpu(fake_cuda, monkeypatch):
    moved: list[str] = []
    real_to = torch.Tensor.to

    def watched_to(self, *args, **kwargs):  # every tensor move of the fit, with its target device
        moved.extend(str(a) for a in (*args, kwargs.get("device")) if isinstance(a, str | torch.device))
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", watched_to)
    cuda_before = torch.cuda.is_initialized()  # False here; a real GPU machine may have used it already
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, 16)).astype(np.float32)
    tree, meta = fit_tree(x, KMeansConfig(levels=(4, 6), backend="torch", device="cpu"))
    assert meta["backend"] == "torch" and meta["torch_device"] == "cpu" and meta["gpus"] == 0
    assert moved and all(m == "cpu" for m in moved), set(moved)
    assert not fake_cuda  # the (fake) GPU's memory was never even asked
    assert torch.cuda.is_initialized() == cuda_before
    ids, _ = kmeans_torch.nearest(x, tree.centroids[-1], "cpu")
    assert len(ids) == 3000 and not fake_cuda


def test_assign_auto_searches_with_torch_a_tree_torch_fitted_on_a_gpu(fake_cuda, monkeypatch):
    from regionset.models.kmeans_index import ClusterTree
    from regionset.stages.assign import AssignConfig, AssignStage

    tree = ClusterTree([np.zeros((1, 4), np.float32)], [np.full(1, -1, np.int32)], True, {"torch_device": "cuda"})
    stage = AssignStage(AssignConfig(kmeans_dir="unused"))
    stage.tree = tree
    assert stage.search_backend() == "torch"
    tree.meta = {"torch_device": "cpu"}  # a CPU (or faiss) tree: auto as before
    assert stage.search_backend() == "auto"
    tree.meta = {"torch_device": "cuda"}
    assert AssignStage(AssignConfig(kmeans_dir="unused", backend="numpy")).search_backend() == "numpy"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # fitted on a GPU, labelled where there is none
    assert stage.search_backend() == "auto"


def test_a_worker_without_the_drivers_gpu_fails_in_one_line(monkeypatch):
    """A per-parent task carries the device the driver resolved (``cuda``); where torch sees none it
    stops with one line naming the key, before any work."""
    from regionset.pipelines.kmeans.lloyd_torch import lloyd

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    x = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    with pytest.raises(RuntimeError, match="kmeans.device=cpu"):
        lloyd(x, 4, 2, 0, False, 256, None, "cuda")
    with pytest.raises(RuntimeError, match="sees no CUDA device in this process"):
        kmeans_torch.nearest(x, x[:4], "cuda")


def test_without_faiss_auto_is_torch_and_faiss_fails_in_one_line(fake_cuda, monkeypatch):
    monkeypatch.setattr(backend_mod, "_faiss_gpus", lambda: None)  # faiss not installed
    assert resolve_backend(KMeansConfig()) == Resolved("torch", "cuda", 1)
    assert resolve_backend(KMeansConfig(device="cpu")) == Resolved("torch", "cpu", 0)
    with pytest.raises(RuntimeError, match="kmeans.backend=torch"):
        resolve_backend(KMeansConfig(backend="faiss"))
