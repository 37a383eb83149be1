"""An orchestrator run holds the output's lock across its tasks (``pipelines/tasks.py``, issue 33
item 4): ``prepare_build`` takes it under the run's id, stage tasks check it, ``finalize`` releases
it; a CLI build on the same output meanwhile exits 2 naming the run."""

from __future__ import annotations

import json

import pytest
import yaml

from regionset.pipelines import tasks
from regionset.pipelines.cli import main
from regionset.pipelines.core.fence import LockedError
from regionset.pipelines.core.lock import LOCK_NAME
from tests.conftest import make_jpeg
from tests.helpers import table_hash, write_urls


def _config(server, tmp_path, out: str) -> tuple[str, str]:
    urls = write_urls(tmp_path, [server.add(f"r{i}.jpg", make_jpeg(190 + 8 * i, 150)) for i in range(3)])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"output": out, "input": {"path": str(urls), "shard_size": 2},
                                   "steps": ["download"], "progress": False, "lease_seconds": 5,
                                   "download": {"allow_loopback": True, "timeout": 3}}))
    return str(cfg), out


@pytest.fixture(params=["local", "memory"])
def run_config(request, server, tmp_path):
    out = str(tmp_path / "out") if request.param == "local" else f"memory://runlock-{tmp_path.name}/out"
    return _config(server, tmp_path, out)


def test_a_run_holds_the_lock_from_prepare_to_finalize(run_config, capsys):
    cfg, out = run_config
    shards = tasks.prepare_build(cfg, run_id="manual__2026-12-07")
    assert shards == [0, 1]
    assert main(["build", cfg]) == 2  # a CLI build during the run
    err = capsys.readouterr().err
    assert "run manual__2026-12-07" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(LockedError, match="not held by run other"):  # another run's task
        tasks.run_stage_shard(cfg, "download", 0, run_id="other")
    for shard in shards:
        assert tasks.run_stage_shard(cfg, "download", shard, run_id="manual__2026-12-07")["status"] == "done"
    tasks.finalize(cfg, run_id="manual__2026-12-07")
    assert main(["build", cfg]) == 0  # released: the next build proceeds


def test_run_tasks_refuse_after_a_takeover(run_config, tmp_path):
    cfg, out = run_config
    tasks.prepare_build(cfg, run_id="r1")
    from regionset.common.storage import as_path

    lock = as_path(out) / LOCK_NAME
    doc = json.loads(lock.read_bytes())
    lock.write_bytes(json.dumps({**doc, "owner": "someone-else", "run_id": None, "token": 9}).encode())
    with pytest.raises(LockedError, match="token 9"):
        tasks.run_stage_shard(cfg, "download", 0, run_id="r1")
    assert not (as_path(out) / "images").exists() or not list((as_path(out) / "images").iterdir())


def test_local_tables_equal_a_plain_build(server, tmp_path):
    cfg, out = _config(server, tmp_path, str(tmp_path / "out"))
    for shard in tasks.prepare_build(cfg, run_id="r2"):
        tasks.run_stage_shard(cfg, "download", shard, run_id="r2")
    tasks.finalize(cfg, run_id="r2")
    plain = tmp_path / "plain.yaml"
    plain.write_text(open(cfg).read().replace(out, str(tmp_path / "plain")))
    assert main(["build", str(plain)]) == 0
    assert table_hash(tmp_path / "out", "images") == table_hash(tmp_path / "plain", "images")
