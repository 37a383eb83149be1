"""A per-parent k-means task in a Ray worker given no GPU fits on the CPU, whatever the driver decided
from its own GPUs (issue 32). A fake ``ray`` module stands in for the worker context."""

from __future__ import annotations

import sys

import numpy as np

from regionset.pipelines.kmeans import distributed
from regionset.pipelines.kmeans.params import FitParams, FitResult
from tests.models.test_executor_gpus import fake_ray


def test_fit_parent_drops_the_drivers_gpu_in_a_worker_given_none(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(distributed, "parent_points", lambda work, parent: np.zeros((4, 2), np.float32))
    monkeypatch.setattr(distributed, "fit_hierarchy", lambda x, totals, p: seen.append(p.gpu) or FitResult())
    monkeypatch.setitem(sys.modules, "ray", fake_ray([]))
    distributed.fit_parent(str(tmp_path), 0, [2], FitParams(gpu=True))
    monkeypatch.setitem(sys.modules, "ray", fake_ray([0]))
    distributed.fit_parent(str(tmp_path), 1, [2], FitParams(gpu=True))
    assert seen == [False, True]
