"""Several workers per GPU, on the CPU: which GPU each worker gets, from a fake list of GPUs.

``FAKE_GPUS`` stands for what ``visible_gpus()`` answers on a two-GPU machine; nothing here starts
CUDA. The worker processes themselves are in ``test_gpu_workers_local.py``.
"""

from __future__ import annotations

import pytest

from regionset.common.typed_config import ConfigError
from regionset.pipelines.config import load_config
from regionset.pipelines.executors import gpus
from regionset.pipelines.executors.config import RayConfig, SparkConfig
from regionset.pipelines.executors.gpus import gpu_slots, pin_task_gpus, spark_task_gpu_amount, stage_gpus
from regionset.pipelines.executors.local import LocalExecutor
from regionset.pipelines.executors.worker_pool import WorkerPool
from regionset.pipelines.preflight.gpus import gpu_checks
from regionset.stages.base import Resources
from regionset.stages.detect import DetectStage
from regionset.stages.embed import EmbedConfig, EmbedStage
from regionset.stages.ocr import OcrConfig, OcrStage
from regionset.stages.regions import RegionsConfig, RegionsStage

FAKE_GPUS = ["0", "1"]  # a fake two-GPU machine


def _embed(device: str = "auto", share: float = 0.0) -> EmbedStage:
    return EmbedStage(EmbedConfig(device=device, resources=Resources(gpus=share)))


@pytest.mark.parametrize("good", [0, 1, 0.5, 0.25, 0.125, 1 / 3, 2, 4])
def test_a_gpu_share_is_whole_or_one_over_n(good):
    Resources(gpus=good).check("embed.resources")


@pytest.mark.parametrize("bad", [-1, 0.3, 0.6, 1.5, 2.5])
def test_other_gpu_shares_fail_naming_the_key(bad):
    with pytest.raises(ConfigError, match=r"^embed\.resources\.gpus=.*a whole number or 1/N"):
        Resources(gpus=bad).check("embed.resources")


def test_the_config_checks_every_stage_hint_when_it_loads():
    with pytest.raises(ConfigError, match=r"^ocr\.resources\.gpus=0\.3:"):
        load_config(None, ["ocr.resources.gpus=0.3"])
    assert load_config(None, ["embed.resources.gpus=0.25"]).embed.resources.workers_per_gpu() == 4


def test_slots_go_round_robin_over_the_gpus():
    assert gpu_slots(0.25, FAKE_GPUS) == ["0", "1"] * 4  # 4 workers on each GPU, spread first
    assert gpu_slots(1.0, FAKE_GPUS) == ["0", "1"]
    assert gpu_slots(2.0, FAKE_GPUS) == ["0,1"]  # whole GPUs per worker
    assert gpu_slots(0.5, ["GPU-ab12", "GPU-cd34"]) == ["GPU-ab12", "GPU-cd34"] * 2  # UUIDs as named
    assert gpu_slots(0.5, FAKE_GPUS, "cuda:1") == [None, None]  # an index in the device: that GPU, unpinned
    assert gpu_slots(0.5, []) == [] and gpu_slots(0.0, FAKE_GPUS) == []


def test_what_a_stage_takes_per_worker():
    assert stage_gpus(_embed(), 0) == 0.0  # auto without a GPU: the CPU
    assert stage_gpus(_embed(), 2) == 1.0 and stage_gpus(_embed(share=0.25), 2) == 0.25
    assert stage_gpus(_embed("cpu", 0.5), 2) == 0.0
    assert stage_gpus(DetectStage(), 2) == 0.0  # the weight-free proposer
    assert stage_gpus(OcrStage(OcrConfig(device="tensorrt")), 1) == 1.0
    with pytest.raises(RuntimeError, match="embed: asks for 1 GPU per worker .* shows 0"):
        stage_gpus(_embed("cuda"), 0)
    with pytest.raises(RuntimeError, match="asks for 2 GPU per worker"):
        stage_gpus(_embed("cuda", 2.0), 1)
    fused = RegionsStage(RegionsConfig(embed=EmbedConfig(resources=Resources(gpus=0.5))))
    assert stage_gpus(fused, 1) == 0.5  # the largest share its parts ask for


def test_the_local_executor_sizes_a_gpu_stage_by_its_slots():
    ex = LocalExecutor(1, show_progress=False, gpus=FAKE_GPUS)
    assert ex.gpu_slots(_embed(share=0.25)) == ["0", "1"] * 4
    assert ex.gpu_slots(_embed("cpu")) == [] and ex.gpu_slots(DetectStage()) == []
    assert LocalExecutor(1, show_progress=False, gpus=[]).gpu_slots(_embed(share=0.25)) == []


def test_a_pinned_pool_is_reused_only_for_the_same_slots():
    pool = WorkerPool(4, 1, ("0", "1", "0", "1"))  # no worker starts before a task
    try:
        assert pool.fits(4, 1, ("0", "1", "0", "1")) and pool.fits(2, 1)  # a CPU stage runs on any pool
        assert not pool.fits(2, 1, ("0", "1")) and not pool.fits(4, 1, ("1", "0", "1", "0"))
    finally:
        pool.close()
    plain = WorkerPool(2, 1)
    try:
        assert not plain.fits(2, 1, ("0", "1"))
    finally:
        plain.close()


def test_ray_takes_the_share_as_num_gpus():
    from regionset.pipelines.executors.ray_data import pool_shape, reserved

    assert reserved(_embed(share=0.25), {"CPU": 8.0, "GPU": 2.0}).gpus == 0.25
    assert reserved(_embed(share=0.25), {"CPU": 8.0}).gpus == 0.0  # auto on a CPU cluster
    assert reserved(_embed("cuda", 0.5), {"CPU": 8.0, "GPU": 1.0}).gpus == 0.5
    assert pool_shape(Resources(gpus=0.25), {"CPU": 64.0, "GPU": 2.0}, 100, RayConfig())[::2] == (8, 0.25)
    assert pool_shape(Resources(gpus=1 / 3), {"CPU": 64.0, "GPU": 2.0}, 100, RayConfig())[0] == 6


def test_spark_asks_for_the_share_only_where_executors_have_gpus():
    from regionset.pipelines.executors.spark import SparkExecutor

    gpu_conf = {"spark.executor.resource.gpu.amount": "1", "spark.task.cpus": "2"}
    assert spark_task_gpu_amount(0.25, "local[*]", gpu_conf) is None
    assert spark_task_gpu_amount(0.25, "spark://head:7077", {}) is None  # no GPU executors: unschedulable
    assert spark_task_gpu_amount(0.0, "spark://head:7077", gpu_conf) is None
    assert spark_task_gpu_amount(0.25, "spark://head:7077", gpu_conf) == 0.25
    ex = SparkExecutor(SparkConfig(master="spark://head:7077", conf=gpu_conf), show_progress=False)
    profile = ex.gpu_profile(_embed(share=0.25))
    assert profile.taskResources["gpu"].amount == 0.25 and profile.taskResources["cpus"].amount == 2
    assert ex.gpu_profile(_embed("cpu")) is None


def test_a_spark_worker_pins_itself_to_its_first_tasks_gpu(monkeypatch):
    monkeypatch.setattr(gpus, "_PINNED", [])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert pin_task_gpus([]) is None and "CUDA_VISIBLE_DEVICES" not in __import__("os").environ
    assert pin_task_gpus(["3"]) == "3" and pin_task_gpus(["1"]) == "3"  # a reused worker keeps its first
    assert __import__("os").environ["CUDA_VISIBLE_DEVICES"] == "3"


def test_preflight_names_a_missing_gpu_in_one_line():
    cuda = load_config(None, ["embed.device=cuda", "steps=[download,embed]"])
    (check,) = gpu_checks(cuda, visible=[])
    assert check.status == "fail" and check.key == "embed.resources.gpus" and "\n" not in check.detail
    shared = load_config(None, ["embed.resources.gpus=0.25", "steps=[download,embed]"])
    (check,) = gpu_checks(shared, visible=["0"])
    assert check.status == "ok" and check.detail == "embed: 4 worker(s) on 1 GPU slot(s), 0.25 GPU each"
    assert list(gpu_checks(shared, visible=[])) == []  # auto on a CPU machine: nothing to say


def test_the_fused_step_is_placed_as_its_gpu_parts():
    from regionset.stages.detect import DetectConfig

    auto = RegionsStage()  # embed and ocr on auto
    assert auto.device() == "auto" and stage_gpus(auto, 2) == 1.0 and stage_gpus(auto, 0) == 0.0
    on_cpu = RegionsStage(RegionsConfig(ocr=OcrConfig(device="cpu"), embed=EmbedConfig(device="cpu")))
    assert on_cpu.device() == "cpu" and stage_gpus(on_cpu, 2) == 0.0
    named = RegionsStage(RegionsConfig(detect=DetectConfig(), embed=EmbedConfig(device="cuda:1")))
    assert named.device() == "cuda:1" and gpu_slots(stage_gpus(named, 2), FAKE_GPUS, named.device()) == [None]


def test_ocr_auto_stays_on_the_cpu_without_onnxruntimes_cuda_provider(monkeypatch):
    """The CPU install of onnxruntime: OCR's ``auto`` keeps its CPU workers on a GPU machine."""
    from regionset.models import ocr_device

    monkeypatch.setattr(ocr_device, "available_providers", lambda: [ocr_device.CPU])
    assert OcrStage().device_here() == "cpu" and stage_gpus(OcrStage(), 2) == 0.0
    assert LocalExecutor(1, show_progress=False, gpus=FAKE_GPUS).gpu_slots(OcrStage()) == []
    monkeypatch.setattr(ocr_device, "available_providers", lambda: [ocr_device.CUDA, ocr_device.CPU])
    assert OcrStage().device_here() == "auto" and gpu_slots(stage_gpus(OcrStage(), 2), FAKE_GPUS) == ["0", "1"]
