"""Global steps in the ETA: their cost models, the build tally and ``status --watch`` on recorded markers."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import yaml

from regionset.common.shard_names import STATE_DIR
from regionset.pipelines.config import load_config
from regionset.pipelines.core.eta import BuildWork, GlobalEta, StageEta, build_eta, extrapolate, global_eta
from regionset.pipelines.core.outputs import GROUP_DUPLICATES_STATE
from regionset.pipelines.core.progress import BuildTally
from regionset.pipelines.dedup.cost import BANDS_S_PER_HASH_AT_1M, FIXED_S, HALVES_S_PER_HASH, group_seconds
from regionset.pipelines.definition import GlobalStep, build_steps
from regionset.pipelines.kmeans.cost import FIT_FIXED_S, KMEANS_MADDS_PER_CORE_S, fit_seconds, kmeans_madds
from regionset.pipelines.tools.watch import BuildWatch, watch_rows
from tests.pipelines.test_eta import T0, write_state


def test_global_eta_counts_down_from_the_model_and_never_below_zero():
    def cost(work):
        return (2.0 * work.images, "2 s/image") if work.images is not None else None

    work = BuildWork(images=50.0, regions=None, cores=2)
    assert global_eta("g", cost, work, done=False, running=False).eta_s == 100.0  # waiting: all of it
    assert global_eta("g", cost, work, done=False, running=True, elapsed_s=30.0).eta_s == 70.0
    assert global_eta("g", cost, work, done=False, running=True, elapsed_s=300.0).eta_s == 0.0  # over its model
    assert global_eta("g", cost, work, done=True, running=False).eta_s == 0.0
    unknown = global_eta("g", cost, BuildWork(None, None, 2), done=False, running=False)
    assert unknown.eta_s is None and unknown.source == "no model yet"
    assert extrapolate(30, 3, 10) == 100.0 and extrapolate(0, 0, 10) is None

    def broken(work):
        raise FileNotFoundError("rice:/gone/config.json")

    g = global_eta("fit_kmeans", broken, work, done=False, running=True)
    assert g.eta_s is None and g.source.startswith("no model: FileNotFoundError")


def test_build_eta_adds_global_steps_and_guesses_without_a_model():
    stages = [StageEta("download", 10, 10, 0.5, 0.0), StageEta("embed", 5, 10, 0.1, 50.0)]
    steps = [GlobalEta("group_duplicates", True, False, None), GlobalEta("fit_kmeans", False, False, 40.0)]
    assert build_eta(stages, steps) == (15, 20, 90.0, False)  # done/total count shard-steps only
    done, total, left, guessed = build_eta(stages, [*steps, GlobalEta("semdedup", False, False, None)])
    assert left == 90.0 and guessed


def test_fit_cost_model_is_the_estimates_multiply_add_model():
    km = SimpleNamespace(levels=[10, 10], sample_size=1000, niter=20, refine_iters=2)
    seconds, source = fit_seconds(km, 64, 5000.0, 4)
    madds = kmeans_madds([10, 10], 1000, 5000.0, 64, 20, 2, 0)["fit"]
    assert seconds == pytest.approx(FIT_FIXED_S + madds / KMEANS_MADDS_PER_CORE_S / 4)
    assert "docs/capacity.md" in source
    assert fit_seconds(km, 64, 0.0, 4)[0] == FIT_FIXED_S
    auto = SimpleNamespace(levels="auto", sample_size=1000, niter=20, refine_iters=0)
    assert fit_seconds(auto, 64, 400.0, 1)[0] > FIT_FIXED_S  # auto levels resolved for the 400 regions sampled
    dedup = SimpleNamespace(scheme="auto", auto_limit=1_000_000, halvings=2)
    assert group_seconds(dedup, 1000)[0] == pytest.approx(FIXED_S + 1000 * BANDS_S_PER_HASH_AT_1M)
    assert group_seconds(dedup, 3e6)[0] == pytest.approx(FIXED_S + 3e6 * HALVES_S_PER_HASH[2])  # auto: halves
    bands = SimpleNamespace(scheme="bands", auto_limit=1_000_000, halvings=2)
    assert group_seconds(bands, 3e6)[0] == pytest.approx(FIXED_S + 3e6 * 3 * BANDS_S_PER_HASH_AT_1M)  # quadratic


def test_build_steps_bind_cost_models_to_global_steps(tmp_path):
    cfg = load_config(None, [f"output={tmp_path}", "input.path=x.txt"])
    steps = {s.name: s for s in build_steps(cfg) if isinstance(s, GlobalStep)}
    assert set(steps) == {"group_duplicates", "fit_kmeans"}
    work = BuildWork(images=1000.0, regions=5000.0, cores=2)
    assert steps["group_duplicates"].cost(work)[0] == pytest.approx(group_seconds(cfg.dedup, 1000)[0])
    expected = fit_seconds(cfg.kmeans, _dim(cfg), 5000.0, 2)[0]
    assert steps["fit_kmeans"].cost(work)[0] == pytest.approx(expected)
    assert steps["fit_kmeans"].cost(BuildWork(1000.0, None, 2)) is None  # no region embedded yet


def _dim(cfg):
    from regionset.stages.embed import EmbedStage

    return EmbedStage(cfg.embed).dim


def test_build_tally_puts_a_running_global_step_in_the_build_line():
    now = [0.0]
    tally = BuildTally(["download", "embed"], 2, clock=lambda: now[0],
                       steps={"fit_kmeans": lambda w: (w.regions / 10.0, "0.1 s/region") if w.regions else None})
    tally.planned("download", todo=2, skipped=0)
    for t in (10.0, 20.0):
        now[0] = t
        tally.shard_done(SimpleNamespace(stage="download", rows_in=5, rows_out=5))
    tally.planned("embed", todo=2, skipped=0)
    now[0] = 30.0
    tally.shard_done(SimpleNamespace(stage="embed", rows_in=5, rows_out=200))
    work = tally.work()
    assert (work.images, work.regions) == (10.0, 400.0)  # 1 of 2 embed shards done: 200 regions each
    now[0] = 40.0
    tally.shard_done(SimpleNamespace(stage="embed", rows_in=5, rows_out=200))
    tally.step_started("fit_kmeans")  # t = 40: model 400 / 10 = 40 s
    now[0] = 55.0
    assert tally.summary() == (4, 4, "0:25")
    tally.step_done("fit_kmeans", 16.0)
    assert tally.summary() == (4, 4, "done")


def _global_state(out, embed_times, images_per_shard=10, regions_per_shard=40):
    """Four input shards, download + dedup complete, embed markers at ``embed_times``."""
    write_state(out, {"download": [T0 + 10 * i for i in range(1, 5)], "dedup": [T0 + 50 + i for i in range(1, 5)],
                      "embed": embed_times}, shards=4)
    steps = ["download", "dedup", "group_duplicates", "embed", "fit_kmeans"]
    (out / "regionset.yaml").write_text(yaml.safe_dump({"config": {"steps": steps, "output": str(out)}}))
    for i in range(len(embed_times)):  # embed's rows out are regions
        p = out / STATE_DIR / "embed" / f"part-{i:05d}.json"
        m = json.loads(p.read_text())
        p.write_text(json.dumps(m | {"rows_out": regions_per_shard}))


def test_watch_shows_global_steps_from_markers_and_commit_files(tmp_path):
    out = tmp_path / "out"
    _global_state(out, [])
    w = BuildWatch(out, window_s=300)
    now = T0 + 60  # dedup's last marker finished at T0 + 54: group_duplicates runs since then
    etas = w.refresh(now=now)
    g, k = w.global_etas(etas, now)
    assert g.step == "group_duplicates" and g.running and not g.done and g.elapsed_s == pytest.approx(6.0)
    assert g.expected_s == pytest.approx(FIXED_S + 40 * BANDS_S_PER_HASH_AT_1M)  # 4 shards x 10 images
    assert k.step == "fit_kmeans" and not k.running and k.eta_s is None  # no region embedded yet
    rows = watch_rows(w, etas, now)
    assert [r[0] for r in rows] == ["download", "dedup", "group_duplicates", "embed", "fit_kmeans", "build"]
    assert rows[2][1] == "global: running 0:06" and rows[-1][3].startswith("~")  # fit_kmeans unknown: a guess
    (out / STATE_DIR / GROUP_DUPLICATES_STATE).write_text("{}")  # the step's commit
    for i, t in enumerate([T0 + 100, T0 + 110]):
        (out / STATE_DIR / "embed" / f"part-{i:05d}.json").write_text(json.dumps(
            {"stage": "embed", "shard": i, "rows_in": 10, "rows_out": 40, "seconds": 5.0, "finished_at": t}))
    etas = w.refresh(now=T0 + 120)
    g, k = w.global_etas(etas, T0 + 120)
    assert g.done and g.eta_s == 0.0
    assert w.work().regions == 160.0  # 2 of 4 shards embedded, 40 regions each
    assert k.expected_s is not None and not k.running and k.eta_s == pytest.approx(k.expected_s)


def test_status_watch_prints_global_step_rows(tmp_path, capsys):
    from regionset.pipelines.cli import main

    out = tmp_path / "out"
    _global_state(out, [])
    assert main(["status", str(out), "--watch", "--interval", "0.1", "--count", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()  # the table may wrap at the test's width; the lines under it not
    assert lines[-2].startswith("group_duplicates: 1 s + bands") and lines[-1] == "fit_kmeans: no model yet"
