"""``device: auto`` in a Ray worker or Spark task that was given no GPU means CPU (issue 32): Ray no
longer hides a node's GPUs from zero-GPU workers, so every actor on a GPU node used ``cuda:0``.
Fake ``ray`` / ``pyspark`` modules stand in for the worker context; a real Ray actor runs last."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import types

import pytest

from regionset.models import kmeans_index, registry
from regionset.models.registry import executor_gpus, pick_device


def fake_ray(gpu_ids, worker=True):
    """A fake ``ray`` module: initialized, in worker mode (or the driver's), with these GPU ids."""
    mode = types.SimpleNamespace(global_worker=types.SimpleNamespace(mode=1 if worker else 0), WORKER_MODE=1)
    return types.SimpleNamespace(is_initialized=lambda: True, get_gpu_ids=lambda: gpu_ids,
                                 _private=types.SimpleNamespace(worker=mode))


@pytest.fixture
def gpu_visible(monkeypatch):
    """torch sees a GPU (as on a GPU node)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_a_ray_worker_given_no_gpu_uses_the_cpu(monkeypatch, gpu_visible):
    monkeypatch.setitem(sys.modules, "ray", fake_ray([]))
    assert executor_gpus() == 0 and pick_device("auto") == "cpu"
    assert kmeans_index._pick_backend("auto") == "numpy"
    assert pick_device("cuda") == "cuda"  # an explicit device is the user's


def test_a_ray_worker_given_a_gpu_and_the_driver_use_it(monkeypatch, gpu_visible):
    monkeypatch.setitem(sys.modules, "ray", fake_ray([0]))
    assert executor_gpus() == 1 and pick_device("auto") == "cuda"
    monkeypatch.setitem(sys.modules, "ray", fake_ray([], worker=False))
    assert executor_gpus() is None and pick_device("auto") == "cuda"


def test_outside_any_executor_nothing_changes(monkeypatch):
    monkeypatch.delitem(sys.modules, "ray", raising=False)
    monkeypatch.delitem(sys.modules, "pyspark", raising=False)
    assert executor_gpus() is None


def _device_in_actor():
    return registry.executor_gpus(), registry.pick_device("auto")


@pytest.mark.ray
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")
def test_a_real_zero_gpu_ray_task_reports_no_gpu():
    import ray

    from tests.pipelines.clusters import short_tmp

    temp = short_tmp("rsg-")  # Ray's socket paths must stay short
    ray.init(address="local", num_cpus=1, include_dashboard=False, _temp_dir=str(temp), logging_level="ERROR")
    try:
        gpus, device = ray.get(ray.remote(num_cpus=1, num_gpus=0)(_device_in_actor).remote())
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    assert gpus == 0 and device == "cpu"
