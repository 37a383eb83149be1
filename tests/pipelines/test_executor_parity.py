"""Executor parity: the same pipeline on local, ray and spark gives identical tables, markers, catalogs.

The pipeline is the demo's (every step ``build_steps`` offers, on its offline default with tiny
models) over a few demo images served on loopback, so this test grows with the pipeline. Each
remote build is compared with the local one: sorted content hashes of every table folder, every
completion marker (timings aside; ``output_sha256`` makes that a byte-level check of each shard),
every other file the build wrote, and the catalog's tables.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os

import pytest

from regionset.common import threads
from regionset.pipelines.build import build
from regionset.pipelines.config import BuildConfig, load_config
from regionset.pipelines.definition import build_steps
from regionset.pipelines.steps import UNFUSED_STEPS as UNFUSED
from regionset.pipelines.tools.demo.run import demo_overrides, write_url_list
from regionset.pipelines.tools.demo.server import LoopbackServer
from tests.pipelines.snapshots import assert_same, snapshot

N_IMAGES, SHARD_SIZE = 6, 4  # 8 URLs with the two bad ones: 2 shards


def _missing(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed (pip install 'regionset[{'ray' if module == 'ray' else 'spark'}]')"
    return None


def _executor(name: str):
    from regionset.pipelines.executors.factory import make_executor

    cfg = load_config(None, [f"executor.name={name}", "executor.ray.num_cpus=2", "executor.spark.master=local[2]",
                             "progress=false"])
    return make_executor(cfg.executor, cfg.progress)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The demo corpus on a loopback server, and the demo build config minus its output folder.

    Float reductions (the embedder's matmuls) round differently with other thread counts, so every
    stage runs with ``resources.cpus=1`` (``_overrides``): one thread per worker on every engine, by
    the thread budget alone. The driver's own steps (k-means) are pinned to one thread here, since
    in-process local stages leave the driver at their budget and the other engines do not touch it.
    """
    import torch

    root = tmp_path_factory.mktemp("parity")
    saved = {k: os.environ.get(k) for k in threads.ENV_NAMES}
    before = torch.get_num_threads()
    threads.apply(1)
    try:
        with LoopbackServer() as server:
            urls = write_url_list(server, root / "urls", limit=N_IMAGES)
            yield root, urls
    finally:
        torch.set_num_threads(before)
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def _overrides(out, urls) -> list[str]:
    """The demo build, with every step of the pipeline (opt-in ones too)."""
    one_thread = [f"{f.name}.resources.cpus=1" for f in dataclasses.fields(BuildConfig)
                  if hasattr(getattr(BuildConfig(), f.name), "resources")]  # every stage section
    return (demo_overrides(out, urls, SHARD_SIZE) + one_thread
            + ["progress=false", f"steps=[{','.join(UNFUSED)}]"])


def _build(corpus, name: str) -> dict[str, object]:
    root, urls = corpus
    out = root / name
    cfg = load_config(None, _overrides(out, urls))
    executor = _executor(name)
    try:
        result = build(cfg, executor=executor)
        again = build(cfg, executor=executor)  # a re-run on the same engine finds every marker
    finally:
        getattr(executor, "close", lambda: None)()
    assert result.shards == [0, 1]
    assert all(r.done == 0 and r.skipped == 2 for r in again.reports), again.reports
    return snapshot(out)


@pytest.fixture(scope="module")
def local_snapshot(corpus):
    return _build(corpus, "local")


def test_pipeline_under_test_is_the_full_step_list(corpus):
    root, urls = corpus
    steps = build_steps(load_config(None, _overrides(root / "steps", urls)))
    assert [s.name for s in steps] == list(UNFUSED)  # opt-in steps included (a fused step replaces its parts)


# ~1-4 min (three full builds); part of the default run so CI checks parity
@pytest.mark.parametrize("name", [pytest.param("ray", marks=pytest.mark.ray),
                                  pytest.param("spark", marks=pytest.mark.spark)])
def test_executor_matches_local(name, corpus, local_snapshot):
    reason = _missing("ray" if name == "ray" else "pyspark")
    if reason:
        print(f"SKIP {name}: {reason}")
        pytest.skip(reason)
    assert_same(_build(corpus, name), local_snapshot)
