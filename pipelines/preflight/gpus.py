"""Preflight of GPU placement on the ``local`` executor: how many workers each model stage starts on
which GPUs (``pipelines/executors/gpus.py``), or one line saying why it cannot (a stage that names
a GPU device, or more GPUs per worker than the machine shows). Ray and Spark place GPUs on their
own nodes: nothing to check here (``resources.gpus`` values are checked when the config loads).
"""

from __future__ import annotations

from collections.abc import Iterator

from regionset.pipelines.config import BuildConfig
from regionset.pipelines.executors.gpus import describe, gpu_slots, may_use_gpu, stage_gpus, visible_gpus
from regionset.pipelines.preflight.checks import Check, fail, ok
from regionset.stages.base import Stage
from regionset.stages.detect import DetectStage
from regionset.stages.embed import EmbedStage
from regionset.stages.ocr import OcrStage
from regionset.stages.regions import RegionsConfig, RegionsStage


def model_stages(cfg: BuildConfig) -> list[Stage]:
    """The model stages the steps of ``cfg`` run (the fused ``regions`` step as one), unset up."""
    stages: list[Stage] = []
    if "regions" in cfg.steps:
        stages.append(RegionsStage(RegionsConfig(cfg.detect, cfg.ocr, cfg.embed)))
    for name, make in (("detect", lambda: DetectStage(cfg.detect)), ("ocr", lambda: OcrStage(cfg.ocr)),
                       ("embed", lambda: EmbedStage(cfg.embed))):
        if name in cfg.steps:
            stages.append(make())
    return stages


def gpu_checks(cfg: BuildConfig, visible: list[str] | None = None) -> Iterator[Check]:
    """One check per model stage that uses a GPU (or names one that is not here) on the ``local`` executor.

    Args:
        cfg: the resolved build config.
        visible: this machine's GPUs (default ``visible_gpus()``; tests give a fake list).
    """
    if cfg.executor.name != "local":
        return
    for stage in [s for s in model_stages(cfg) if may_use_gpu(s)]:
        if visible is None:
            visible = visible_gpus()
        key = f"{stage.name}.resources.gpus"
        try:
            gpus = stage_gpus(stage, len(visible))
        except RuntimeError as e:
            yield fail(f"{stage.name} GPUs", key, str(e))
            continue
        if gpus > 0:  # a stage left on the CPU (``auto`` with no GPU here) says nothing
            yield ok(f"{stage.name} GPUs", key, describe(stage.name, gpus, gpu_slots(gpus, visible, stage.device())))
