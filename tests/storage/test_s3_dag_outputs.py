"""Where an orchestrator run's outputs land with an ``s3://`` output (issue 35 item 4): the catalog
is kept on the store and ``regionset sql`` on another host (another cache folder) reads that copy;
the DAG's training task writes to a ``loop.out_dir`` URL and refuses a relative one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regionset.common.storage import as_path
from regionset.pipelines import tasks
from regionset.pipelines.build import build
from regionset.pipelines.cli import main
from regionset.pipelines.core import catalog
from regionset.training.synthetic import write_synthetic_shards
from tests.conftest import make_jpeg
from tests.helpers import download_only, write_urls
from tests.s3server import s3  # noqa: F401 (fixture)


def _sql(out: str, query: str, capsys) -> str:
    capsys.readouterr()
    assert main(["sql", out, query]) == 0
    return capsys.readouterr().out


def test_catalog_lives_on_the_store_and_another_host_reads_it(server, s3, tmp_path, monkeypatch, capsys):  # noqa: F811
    urls = write_urls(tmp_path, [server.add(f"c{i}.jpg", make_jpeg(200 + 10 * i, 150)) for i in range(5)])
    out = s3.url("cataloged")
    build(download_only(out, urls))
    assert "catalog.duckdb" in s3.keys("cataloged")

    other = tmp_path / "other-host-cache"  # another host: an empty cache, and it must not build its own
    monkeypatch.setenv("REGIONSET_CATALOG_DIR", str(other))
    monkeypatch.setattr(catalog, "build_catalog", lambda *a, **k: pytest.fail("rebuilt instead of read"))
    assert "5" in _sql(out, "SELECT count(*) AS n FROM images", capsys)
    cached = catalog.catalog_file(catalog.Output(out))
    assert cached.parent == other and cached.exists()
    assert "1" in _sql(out, "SELECT count(*) AS runs FROM runs", capsys)
    monkeypatch.undo()

    build(download_only(out, urls))  # a second run: its record is in the store's new catalog
    monkeypatch.setenv("REGIONSET_CATALOG_DIR", str(other))
    assert "2" in _sql(out, "SELECT count(*) AS runs FROM runs", capsys)  # the changed copy, downloaded


def test_the_dag_train_task_writes_to_a_loop_out_dir_url_and_refuses_a_relative_one(s3, tmp_path):  # noqa: F811
    root = as_path(s3.url("trainset"))
    for i, path in enumerate(write_synthetic_shards(str(tmp_path / "synth"), num_shards=1, rows_per_shard=16,
                                                    size=64)):
        (root / "train" / Path(path).name).write_bytes(Path(path).read_bytes())
        (root / "_state" / "pack" / f"part-{i:05d}.json").write_text(json.dumps({"stage": "pack", "shard": i}))
    tiny = [f"data.train_dir={root}", "loop.steps=2", "loop.log_every=1", "loop.save_every=2", "export=false",
            "data.batch_size=8", "data.num_workers=0"]
    with pytest.raises(tasks.TrainOutDirError, match=r"^train rice: loop.out_dir 'runs/rice-tiny' is relative"):
        tasks.train("rice", "training/configs/rice-tiny.yaml", tiny)
    dest = s3.url("training/rice-run")
    assert tasks.train("rice", "training/configs/rice-tiny.yaml", tiny, out_dir=dest) == dest
    keys = s3.keys("training/rice-run")
    assert "checkpoints/step-00000002/complete.json" in keys and "log.jsonl" in keys, keys
