"""Two attempts of one shard (a Spark task retry, an Airflow zombie, a Ray retry while the old worker
still reaches the store): exactly one marker wins, and it describes the object readers get.

Each attempt stages its bytes under an attempt object of its own (``_state/_attempts``), the marker is
committed conditionally (create-if-absent / compare-and-swap on the stale marker's version), and only
the object the winning marker names is copied to the shard's file; a loser removes its attempt object.
Run on a local folder, fsspec ``memory://`` and the loopback S3 server (``tests/s3server.py``).
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass

import pyarrow as pa
import pytest

from regionset.pipelines.core import shard_run, shards
from regionset.pipelines.core.cleanup import clean_temp_files
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.shard_run import ShardTask, finish_shard, plan_stage
from regionset.pipelines.core.shards import read_marker, read_table, shard_path, write_table
from regionset.schemas import INPUT, input_schema
from regionset.stages.base import Stage
from tests.s3server import s3  # noqa: F401 (fixture)

SCHEMA = pa.schema([pa.field("key", pa.string(), nullable=False), pa.field("n", pa.int64())])
RACE_ROUNDS = 20


@dataclass(frozen=True)
class FakeConfig:
    factor: int = 1


class FakeRandomStage(Stage):
    """A fake stage whose output differs per attempt (as a randomly initialised model's would)."""

    name = "fake_random"
    inputs = (INPUT,)
    output = "fake_random_out"

    def output_schema(self) -> pa.Schema:
        return SCHEMA

    def process(self, table: pa.Table) -> pa.Table:
        salt = int.from_bytes(os.urandom(4), "big")
        return pa.Table.from_pylist([{"key": r["key"], "n": salt} for r in table.to_pylist()], schema=SCHEMA)


@pytest.fixture(params=["local", "memory", "s3"])
def out(request, tmp_path):
    """A fresh output on a local folder, memory:// or the S3 test server, with shard 0's input."""
    if request.param == "local":
        url = str(tmp_path / "out")
    elif request.param == "memory":
        url = f"memory://dup-{os.urandom(4).hex()}/out"
    else:
        url = request.getfixturevalue("s3").url(f"dup-{os.urandom(4).hex()}")
    o = Output(url)
    rows = [{"key": str(i), "url": f"http://127.0.0.1/{i}.jpg", "caption": None} for i in range(4)]
    write_table(pa.Table.from_pylist(rows, schema=input_schema()), shard_path(o.root, INPUT, 0))
    return o


def _attempt(stage: Stage, out: Output, task: ShardTask):
    table = stage.process(read_table(shard_path(out.root, INPUT, 0)))
    return finish_shard(stage, out, task, table.num_rows, table, 0.0, {})


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _attempt_objects(out: Output) -> list:
    folder = shards.attempts_folder(out.root)
    if not folder.exists():
        return []
    return [p for p in folder.rglob("*") if p.is_file()]


def _check_one_winner(out: Output, stage: Stage, returned: list) -> None:
    marker = read_marker(out.root, stage.name, 0)
    assert marker is not None
    assert _sha(shard_path(out.root, stage.output, 0)) == marker.output_sha256  # the marker vouches for it
    assert all(m.output_sha256 == marker.output_sha256 for m in returned)  # every attempt reports the winner
    assert _attempt_objects(out) == []  # the loser removed its object, the winner its staged copy
    assert marker.size == shard_path(out.root, stage.output, 0).stat().st_size
    got = read_table(shard_path(out.root, stage.output, 0))
    assert len(set(got.column("n").to_pylist())) == 1  # one attempt's rows, whole


def _interleaved(stage, out, task, monkeypatch) -> list:
    """Attempt A of ``task`` with a whole attempt B run between A's shard write and A's marker;
    both attempts' results."""
    nested, started = [], []
    real_failpoint = shard_run.failpoint

    def run_b_inside_a(name: str) -> None:
        real_failpoint(name)
        if name.startswith("shard_written:") and not started:
            started.append(name)
            nested.append(_attempt(stage, out, task))  # attempt B, whole, between A's write and A's marker

    monkeypatch.setattr(shard_run, "failpoint", run_b_inside_a)
    return [_attempt(stage, out, task), *nested]


def test_interleaved_attempts_marker_describes_the_object(out, monkeypatch):
    """The old bug, deterministically: attempt A writes its shard, attempt B runs whole, then A
    commits. Before attempt objects, A's marker ended up over B's bytes (a hash that lies)."""
    stage = FakeRandomStage(FakeConfig())
    task = plan_stage(stage, out, [0])[0]
    _check_one_winner(out, stage, _interleaved(stage, out, task, monkeypatch))


def test_rerun_over_a_stale_marker_interleaved(out, monkeypatch):
    """Same interleaving on a shard redone after its config changed (the stale marker is replaced)."""
    stage = FakeRandomStage(FakeConfig())
    _attempt(stage, out, plan_stage(stage, out, [0])[0])
    stage2 = FakeRandomStage(FakeConfig(factor=2))
    task = plan_stage(stage2, out, [0])[0]
    assert task.stale_marker
    _check_one_winner(out, stage2, _interleaved(stage2, out, task, monkeypatch))
    assert read_marker(out.root, stage2.name, 0).config_hash == stage2.config_hash(out)
    assert plan_stage(stage2, out, [0]) == []  # done: the next plan skips it


def test_racing_attempts_threads(out):
    """Two threads run the same shard at once, ``RACE_ROUNDS`` times: one marker, describing the
    shard's bytes; no attempt object left; the next plan finds the shard done."""
    stage = FakeRandomStage(FakeConfig())
    rounds = RACE_ROUNDS if out.is_remote else RACE_ROUNDS // 2
    for r in range(rounds):
        stage_r = FakeRandomStage(FakeConfig(factor=r + 1))  # every round replaces the last round's marker
        task = plan_stage(stage_r, out, [0])[0]
        got, errors = [], []
        start = threading.Barrier(2, timeout=60)

        def attempt(stage=stage_r, task=task, start=start, got=got, errors=errors):
            try:
                start.wait()
                got.append(_attempt(stage, out, task))
            except BaseException as err:  # noqa: BLE001 - reported below
                errors.append(err)

        threads = [threading.Thread(target=attempt) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
        _check_one_winner(out, stage_r, got)
        assert plan_stage(stage_r, out, [0]) == []
    assert stage.name == "fake_random"


def test_crashed_loser_object_is_removed_at_build_start(out):
    """An attempt object nothing names (an attempt killed before its marker) is removed by the next
    build's start-up cleanup; one a marker names (killed before the copy) is rolled forward by the plan."""
    stage = FakeRandomStage(FakeConfig())
    m = _attempt(stage, out, plan_stage(stage, out, [0])[0])
    orphan = shards.attempts_folder(out.root) / stage.output / "part-00000.0123456789abcdef.parquet"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"half of an attempt")
    assert clean_temp_files(out.root, {stage.output: stage.name}) >= 1
    assert not orphan.exists()
    assert _sha(shard_path(out.root, stage.output, 0)) == m.output_sha256  # the committed shard is kept


def test_roll_forward_after_a_crash_between_marker_and_copy(out, monkeypatch):
    """Killed after its marker won but before the copy: the plan copies the named attempt object."""
    stage = FakeRandomStage(FakeConfig())
    task = plan_stage(stage, out, [0])[0]

    class Killed(Exception):
        pass

    def die(name: str) -> None:
        if name.startswith("marker_committed:"):
            raise Killed

    monkeypatch.setattr(shard_run, "failpoint", die)
    with pytest.raises(Killed):
        _attempt(stage, out, task)
    marker = read_marker(out.root, stage.name, 0)
    assert marker is not None and not shard_path(out.root, stage.output, 0).exists()
    assert clean_temp_files(out.root, {stage.output: stage.name}) == 0  # a named attempt object is kept
    assert plan_stage(stage, out, [0]) == []  # rolled forward: the shard is done
    assert _sha(shard_path(out.root, stage.output, 0)) == marker.output_sha256
    assert _attempt_objects(out) == []
