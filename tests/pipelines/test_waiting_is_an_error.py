"""Shards still ``waiting`` after their upstream stage ran in the same build are an error (issue 32):
on a cluster whose workers write a local ``output`` the driver cannot see, the next stage finds no
input and, before, the build "succeeded" with a waiting count in its summary and an empty dataset."""

from __future__ import annotations

import pytest

from regionset.pipelines import build as build_module
from regionset.pipelines.build import build
from regionset.pipelines.cli import main
from regionset.pipelines.core.shard_run import StageReport, WaitingError, check_not_waiting
from regionset.pipelines.core.shards import shard_path
from regionset.pipelines.executors.local import LocalExecutor
from regionset.stages.dedup import DedupStage
from tests.helpers import download_only, write_urls


class FakeLostOutputExecutor(LocalExecutor):
    """The local executor, except that the ``images`` shard 1 it writes is not where the driver reads
    it (as when a worker on another host writes to its own local disk)."""

    def run_stage(self, stage, out, shards):
        report = super().run_stage(stage, out, shards)
        if stage.name == "download":
            shard_path(out, "images", 1).unlink()
        return report


def _cfg(tmp_path, steps="[download,dedup]"):
    urls = write_urls(tmp_path, [f"http://127.0.0.1:9/{i}.jpg" for i in range(8)])  # refused at once: failed rows
    return download_only(tmp_path / "out", urls, shard_size=2, extra=[f"steps={steps}"])


def test_waiting_after_the_upstream_ran_in_this_build_is_an_error(tmp_path):
    with pytest.raises(WaitingError, match=r"stage dedup: 1 shards still waiting .* after download ran"
                                           r" in this build \(part-00001.parquet\)"):
        build(_cfg(tmp_path), executor=FakeLostOutputExecutor(show_progress=False))


def test_the_cli_exits_1_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(build_module, "make_executor", lambda *a: FakeLostOutputExecutor(show_progress=False))
    cfg = _cfg(tmp_path)
    code = main(["build", f"output={cfg.output}", f"input.path={cfg.input.path}", "input.shard_size=2",
                 "steps=[download,dedup]", "download.allow_loopback=true", "download.timeout=2", "progress=false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "stage dedup: 1 shards still waiting" in err[0]


def test_waiting_for_a_stage_not_in_this_build_is_only_counted(tmp_path):
    stage = DedupStage()
    check_not_waiting(stage, StageReport("dedup", waiting=4, waiting_shards=[0, 1, 2]), {})
    with pytest.raises(WaitingError, match=r"\(part-00000.parquet, part-00001.parquet, part-00002.parquet and 1 more\)"):
        check_not_waiting(stage, StageReport("dedup", waiting=4, waiting_shards=[0, 1, 2]), {"images": "download"})
