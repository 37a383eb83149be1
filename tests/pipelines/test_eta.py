"""Rates and ETAs on recorded timestamps: core/eta.py, the build tally, ``status --watch``."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from regionset.common.shard_names import STATE_DIR, shard_name
from regionset.pipelines.cli import main
from regionset.pipelines.core.eta import StageEta, build_eta, format_eta, stage_eta, window_rate
from regionset.pipelines.core.progress import BuildTally
from regionset.pipelines.tools.watch import BuildWatch, failures
from regionset.schemas import INPUT

T0 = 1_800_000_000.0


def test_window_rate_counts_only_the_last_minutes():
    times = [T0 + i for i in range(0, 600, 10)]  # one shard every 10 s for 10 min, then 5 min at 1 per 30 s
    times += [T0 + 600 + 30 * i for i in range(1, 11)]
    now = T0 + 900
    assert window_rate(times, now, started=T0 - 10, window_s=300) == pytest.approx(10 / 300)  # the slow part
    assert window_rate(times, now, started=T0 - 10, window_s=3600) == pytest.approx(70 / 910)
    assert window_rate(times[:1], T0 + 5) == 0.0  # one completion and no start: no rate yet
    assert window_rate([], now) == 0.0


def test_stage_eta_from_recorded_times():
    times = [T0 + 20 * i for i in range(1, 31)]  # 30 shards, one per 20 s since T0
    e = stage_eta("embed", times, total=100, now=T0 + 600, started=T0)
    assert e.done == 30 and e.remaining == 70
    assert e.rate == pytest.approx(15 / 300)  # 15 shards in the last 300 s
    assert e.eta_s == pytest.approx(70 * 20)
    assert stage_eta("embed", times, total=30, now=T0 + 600).eta_s == 0.0
    assert stage_eta("embed", [], total=5, now=T0).eta_s is None


def test_build_eta_sums_stages_and_guesses_unstarted_ones():
    stages = [StageEta("download", 10, 10, 0.5, 0.0), StageEta("detect", 4, 10, 0.1, 60.0),
              StageEta("embed", 0, 10, 0.0, None)]
    done, total, left, guessed = build_eta(stages)
    assert (done, total) == (14, 30)
    assert left == pytest.approx(60.0 + 10 / 0.3) and guessed  # embed at the mean rate of (0.5, 0.1)
    assert build_eta([StageEta("a", 0, 3, 0.0, None)]) == (0, 3, None, True)
    assert format_eta(3723) == "1:02:03" and format_eta(65) == "1:05" and format_eta(0) == "done"


def test_build_tally_counts_skipped_shards_as_done():
    clock = iter([0.0, 10.0, 20.0, 30.0, 40.0]).__next__
    tally = BuildTally(["download", "detect"], 4, clock=clock)
    tally.planned("download", todo=2, skipped=2)  # t = 0
    tally.shard_done(SimpleNamespace(stage="download"))  # t = 10
    tally.shard_done(SimpleNamespace(stage="download"))  # t = 20
    e = tally.stages()  # now = 30
    assert (e[0].done, e[0].total, e[0].eta_s) == (4, 4, 0.0)
    assert (e[1].done, e[1].total) == (0, 4)
    assert tally.line() == "4/8 shard-steps  ETA ~1:20"  # now = 40: detect 4 shards at download's 2 per 40 s


def write_state(out: Path, stages: dict[str, list[float]], shards: int, seconds: float = 5.0,
                counters: dict[str, int] | None = None) -> None:
    """A synthetic output folder: ``shards`` input shards and one marker per time in ``stages``."""
    (out / INPUT).mkdir(parents=True, exist_ok=True)
    for i in range(shards):
        (out / INPUT / shard_name(i)).write_bytes(b"")
    (out / "regionset.yaml").write_text(yaml.safe_dump({"config": {"steps": list(stages)}}))
    for stage, times in stages.items():
        d = out / STATE_DIR / stage
        d.mkdir(parents=True, exist_ok=True)
        for i, t in enumerate(times):
            m = {"stage": stage, "shard": i, "config_hash": "c", "input_hash": "i", "output_sha256": "s",
                 "rows_in": 10, "rows_out": 10, "seconds": seconds, "finished_at": t,
                 "counters": counters or {"status:success": 10}}
            (d / shard_name(i).replace(".parquet", ".json")).write_text(json.dumps(m))


def test_watch_eta_on_recorded_markers_and_incremental_refresh(tmp_path):
    out = tmp_path / "out"
    write_state(out, {"download": [T0 + 10 * i for i in range(1, 41)], "detect": [T0 + 400 + 20 * i for i in range(1, 11)],
                      "embed": []}, shards=40)
    w = BuildWatch(out, window_s=300)
    etas = w.refresh(now=T0 + 600)
    d, det, emb = etas
    assert (d.done, d.total, d.eta_s) == (40, 40, 0.0)
    assert det.done == 10 and det.rate == pytest.approx(10 / 185)  # started T0 + 415 (first marker 420, 5 s long)
    assert det.eta_s == pytest.approx(30 / (10 / 185))
    assert emb.done == 0 and emb.eta_s is None
    assert w.feeds["download"].reads == 40
    # nothing new: no marker read again
    w.refresh(now=T0 + 601)
    assert w.feeds["download"].reads == 40 and w.feeds["detect"].reads == 10
    # two more detect markers: only they are read
    d2 = out / STATE_DIR / "detect"
    for i, t in ((10, T0 + 610), (11, T0 + 620)):
        (d2 / shard_name(i).replace(".parquet", ".json")).write_text(json.dumps(
            {"stage": "detect", "shard": i, "rows_in": 1, "seconds": 5.0, "finished_at": t,
             "counters": {"status:failed_to_download": 2, "error:timeout": 1}}))
    etas = w.refresh(now=T0 + 630)
    assert w.feeds["detect"].reads == 12 and etas[1].done == 12
    assert w.recent_failures("detect", T0 + 630) == 6


def test_failures_counts_errors_and_non_success_statuses():
    assert failures({"status:success": 5, "status:failed_to_download": 2, "error:http_404": 2, "drop:x": 7}) == 4


def test_status_watch_prints_and_stops_when_done(tmp_path, capsys):
    out = tmp_path / "out"
    write_state(out, {"download": [T0 + i for i in range(1, 4)]}, shards=3)
    assert main(["status", str(out), "--watch", "--interval", "0.1", "--count", "5"]) == 0
    text = capsys.readouterr().out
    assert "every stage is done" in text and "3/3" in text and text.count("done/total") == 1
