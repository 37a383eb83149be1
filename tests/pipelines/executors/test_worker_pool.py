"""The local executor's worker pool: one per executor, reused by every stage, torn down by close().

Fake stages log, per worker process, each ``setup``, shard and ``teardown`` to files, so the tests
read how often each worker loaded each stage's "model" and that closing the executor ran teardown.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from regionset.common import threads
from regionset.pipelines.core.shards import shard_path, write_table
from regionset.pipelines.executors.local import LocalExecutor
from regionset.schemas import INPUT, input_schema
from regionset.stages.base import Resources, Stage

ROOT = Path(__file__).resolve().parents[3]
OUT_SCHEMA = pa.schema([pa.field("key", pa.string()), pa.field("value", pa.string())])


@dataclass(frozen=True)
class FakeLogConfig:
    log: str = ""
    suffix: str = "!"
    resources: Resources = Resources()


class FakeUpperStage(Stage):
    """input -> fake_upper: the url upper-cased; logs setup/shard/teardown lines per worker."""

    name = "fake_upper"
    inputs = (INPUT,)
    output = "fake_upper"

    def _log(self, what: str) -> None:
        with open(Path(self.config.log) / f"{self.name}.{os.getpid()}.log", "a") as f:
            f.write(what + "\n")

    def setup(self) -> None:
        self._log("setup")

    def teardown(self) -> None:
        self._log("teardown")

    def output_schema(self) -> pa.Schema:
        return OUT_SCHEMA

    def transform(self, value: str) -> str:
        return value.upper() + self.config.suffix

    def process(self, table: pa.Table) -> pa.Table:
        self._log("shard")
        values = [self.transform(v) for v in table.column("url").to_pylist()]
        return pa.table({"key": table.column("key"), "value": values}, schema=OUT_SCHEMA)


class FakeReverseStage(FakeUpperStage):
    """input -> fake_reverse: the url reversed."""

    name = "fake_reverse"
    output = "fake_reverse"

    def transform(self, value: str) -> str:
        return value[::-1] + self.config.suffix


@pytest.fixture
def spawn_path(monkeypatch):
    """Spawned workers import this checkout (and this test module, for the Fake stages)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def _inputs(out: Path, shards: range) -> None:
    for s in shards:
        rows = [{"key": f"{s}-{i}", "url": f"http://127.0.0.1/{s}/{i}.jpg", "caption": None} for i in range(3)]
        write_table(pa.Table.from_pylist(rows, schema=input_schema()), shard_path(out, INPUT, s))


def _logs(log: Path) -> dict[tuple[str, int], Counter]:
    """(stage, pid) -> Counter of setup/shard/teardown lines."""
    got = {}
    for p in log.glob("*.log"):
        stage, pid, _ = p.name.split(".")
        got[(stage, int(pid))] = Counter(p.read_text().split())
    return got


def _build(ex: LocalExecutor, out: Path, log: Path, shards: list[int], suffix: str = "!") -> None:
    for cls in (FakeUpperStage, FakeReverseStage):
        report = ex.run_stage(cls(FakeLogConfig(str(log), suffix)), out, shards)
        assert report.done == len(shards)


def _tables(out: Path, shards: list[int]) -> list[list[dict]]:
    return [pq.read_table(shard_path(out, f, s)).to_pylist() for f in ("fake_upper", "fake_reverse") for s in shards]


def test_two_processes_load_each_stage_once_per_worker_and_match_one_process(tmp_path, spawn_path):
    one, two, log1, log2 = (tmp_path / n for n in ("one", "two", "log1", "log2"))
    for d in (log1, log2):
        d.mkdir()
    _inputs(one, range(6))
    _inputs(two, range(6))
    with LocalExecutor(1, show_progress=False) as ex:
        _build(ex, one, log1, [0, 1, 2, 3, 4, 5])
    with LocalExecutor(2, show_progress=False) as ex:
        _build(ex, two, log2, [0, 1, 2, 3])
        pool = ex.pool
        pids = {p.pid for p in pool._pool._processes.values()}
        _build(ex, two, log2, [4, 5])  # a second run of the same stages: cached, not set up again
        assert ex.pool is pool  # one pool for both stages and both runs
    logs = _logs(log2)
    assert {pid for _, pid in logs} <= pids and os.getpid() not in pids
    assert {stage for stage, _ in logs} == {"fake_upper", "fake_reverse"}
    for (stage, pid), n in logs.items():
        assert n["setup"] == 1 and n["teardown"] == 1, (stage, pid, n)
    assert sum(n["shard"] for (stage, _), n in logs.items() if stage == "fake_upper") == 6
    assert _tables(two, list(range(6))) == _tables(one, list(range(6)))


def test_close_stops_the_workers_and_tears_their_stages_down(tmp_path, spawn_path):
    log = tmp_path / "log"
    log.mkdir()
    _inputs(tmp_path, range(2))
    ex = LocalExecutor(2, show_progress=False)
    _build(ex, tmp_path, log, [0, 1])
    procs = list(ex.pool._pool._processes.values())
    assert all(p.is_alive() for p in procs) and not any(n["teardown"] for n in _logs(log).values())
    ex.close()
    assert ex.pool is None and not any(p.is_alive() for p in procs)
    assert [p.exitcode for p in procs] == [0] * len(procs)
    assert all(n["setup"] == n["teardown"] == 1 for n in _logs(log).values()), _logs(log)
    ex.close()  # twice is fine


def test_a_new_config_of_a_stage_replaces_the_workers_copy(tmp_path, spawn_path):
    log = tmp_path / "log"
    log.mkdir()
    _inputs(tmp_path, range(2))
    with LocalExecutor(2, show_progress=False) as ex:
        ex.run_stage(FakeUpperStage(FakeLogConfig(str(log))), tmp_path, [0, 1])
        ex.run_stage(FakeUpperStage(FakeLogConfig(str(log), suffix="?")), tmp_path, [0, 1])  # redone
        assert pq.read_table(shard_path(tmp_path, "fake_upper", 0)).column("value")[0].as_py().endswith("?")
    for n in _logs(log).values():  # the old copy is torn down before the new one sets up
        assert n["setup"] == n["teardown"] and n["setup"] >= 1


def test_plain_calls_run_on_the_same_workers(tmp_path, spawn_path):
    _inputs(tmp_path, range(2))
    with LocalExecutor(2, show_progress=False) as ex:
        ex.run_stage(FakeUpperStage(FakeLogConfig(str(tmp_path))), tmp_path, [0, 1])
        pids = {p.pid for p in ex.pool._pool._processes.values()}
        assert set(ex.pool.call(os.getpid, [()] * 4, window=4)) <= pids
        assert list(ex.pool.call(pow, [(2, 3), (3, 2)], window=1)) == [8, 9]  # in job order


def touch(folder: str, i: int) -> int:
    """A plain call that leaves a file behind: which calls were started."""
    Path(folder, f"{i}").touch()
    return i


def test_calls_are_yielded_in_order_with_a_bounded_window(tmp_path, spawn_path):
    jobs = [(str(tmp_path), i) for i in range(40)]
    with LocalExecutor(2, show_progress=False) as ex:
        assert ex.run_calls(touch, jobs) == list(range(40))
        for f in tmp_path.iterdir():
            f.unlink()
        calls = ex.iter_calls(touch, jobs)
        assert next(calls) == 0
        calls.close()  # the caller stops: what was not started is cancelled
        started = len(list(tmp_path.iterdir()))
        assert 1 <= started <= 4 + 1, started  # the window: 2 × 2 workers in flight, one refilled


def test_the_pool_is_reused_while_the_share_is_the_same(monkeypatch):
    monkeypatch.setattr(threads, "machine_cpus", lambda: 8)
    ex = LocalExecutor("auto", show_progress=False)
    try:  # pools start their workers on the first task: nothing is spawned here
        first = ex._pool_for(4)
        assert ex._pool_for(4) is first and ex._pool_for(3) is first  # 8 // 3 == 2 threads, as 8 // 4
        second = ex._pool_for(2)  # 4 threads each: a new pool, the old one is closed
        assert second is not first and (second.size, second.share) == (2, 4)
        assert ex._pool_for(4) is not second
    finally:
        ex.close()
    assert ex.pool is None


def test_a_set_up_stage_gets_its_budget_back_after_another_stage(monkeypatch):
    monkeypatch.setattr(threads, "_share", 2)
    monkeypatch.setattr(threads, "_applied", None)
    for name in threads.ENV_NAMES:
        monkeypatch.setenv(name, os.environ.get(name, "1"))
    applied = []
    monkeypatch.setattr(threads, "apply", lambda n: (applied.append(n), setattr(threads, "_applied", n))[0] or n)
    one = FakeUpperStage(FakeLogConfig(resources=Resources(cpus=1)))
    whole = FakeReverseStage(FakeLogConfig(resources=Resources(cpus=0)))
    monkeypatch.setattr(FakeUpperStage, "setup", lambda self: None)
    monkeypatch.setattr(FakeReverseStage, "setup", lambda self: None)
    one.ensure_setup()
    whole.ensure_setup()
    assert threads.current() == 2
    one.ensure_setup()  # already set up: only its budget comes back
    assert threads.current() == 1
    one.ensure_setup()  # unchanged: nothing applied
    assert applied == [1, 1, 2, 2, 1]
