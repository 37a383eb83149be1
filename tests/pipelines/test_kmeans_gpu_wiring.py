"""GPU wiring, checked with FakeGpuFaiss (this machine has no GPU): when faiss reports a GPU, the
k-means fits ask FAISS for GPU k-means, and the per-parent refinement maps and exact assignment
search on flat indexes moved to every GPU; ``kmeans.device: cpu`` keeps everything on the CPU."""

from __future__ import annotations

import json

import faiss
import pytest

from regionset.pipelines.config import BuildConfig
from regionset.pipelines.executors.local import LocalExecutor
from regionset.pipelines.kmeans.config import KMeansConfig
from regionset.stages.assign import AssignConfig, AssignStage
from tests.helpers import run_fit_kmeans
from tests.label_data import write_mixture


class FakeGpuFaiss:
    """Says faiss sees one GPU and records what would go to it; the CPU faiss does the work."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.kmeans_gpu: list[bool] = []
        self.moved = 0
        real = faiss.Kmeans

        def kmeans(d: int, k: int, **kw: object) -> faiss.Kmeans:
            self.kmeans_gpu.append(bool(kw.get("gpu")))
            return real(d, k, **{**kw, "gpu": False})

        def to_all_gpus(index: faiss.Index) -> faiss.Index:
            self.moved += 1
            return index

        monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
        monkeypatch.setattr(faiss, "Kmeans", kmeans)
        monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", to_all_gpus)


@pytest.mark.parametrize("fit", ["local", "per_parent"])
def test_fits_refinement_and_exact_assign_go_to_the_gpu_when_faiss_sees_one(tmp_path, monkeypatch, fit):
    fake = FakeGpuFaiss(monkeypatch)
    write_mixture(tmp_path, 2, 400, d=8, k=20)
    run_fit_kmeans(tmp_path, BuildConfig(kmeans=KMeansConfig(levels=(4, 5), sample_size=800, fit=fit)), [0, 1])
    assert fake.kmeans_gpu and all(fake.kmeans_gpu)  # level 0 and every parent's split
    assert fake.moved > 0  # the refinement's nearest-leaf passes (in the driver, or per parent)
    assert json.loads((tmp_path / "kmeans" / "kmeans.json").read_text())["gpus"] == 1
    moved = fake.moved
    stage = AssignStage(AssignConfig(kmeans_dir=str(tmp_path / "kmeans"), search="exact"))
    LocalExecutor(show_progress=False).run_stage(stage, tmp_path, [0, 1])
    assert fake.moved > moved


def test_device_cpu_keeps_the_fit_on_the_cpu(tmp_path, monkeypatch):
    fake = FakeGpuFaiss(monkeypatch)
    write_mixture(tmp_path, 2, 400, d=8, k=20)
    km = KMeansConfig(levels=(4, 5), sample_size=800, fit="per_parent", device="cpu")
    run_fit_kmeans(tmp_path, BuildConfig(kmeans=km), [0, 1])
    assert fake.kmeans_gpu and not any(fake.kmeans_gpu) and fake.moved == 0
    assert json.loads((tmp_path / "kmeans" / "kmeans.json").read_text())["gpus"] == 0
