"""The DAG as deployed (issue 35 items 3 to 5), through ``dag.test()`` on a tiny download-only build:
per-shard tasks batched to fit Airflow's ``max_map_length``, a config changed after ``prepare``
failing the next task at once (no retries) with the one line naming the run and both hashes, and
(slow) a run whose config, output, catalog and training output all live on a loopback S3 server."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from regionset.common.storage import as_path
from regionset.common.typed_config import to_dict
from regionset.pipelines.build import build
from regionset.pipelines.cli import main
from regionset.training.synthetic import write_synthetic_shards
from tests.conftest import make_jpeg
from tests.dags.test_regionset_dag import REPO, _write, drive
from tests.helpers import download_only, table_hash, write_urls
from tests.s3server import s3  # noqa: F401 (fixture)

pytestmark = pytest.mark.airflow


@pytest.fixture
def tiny_config(server, tmp_path) -> tuple[Path, Path]:
    """A download-only build of 6 loopback images in 3 shards; (config file, URL list)."""
    urls = write_urls(tmp_path, [server.add(f"d{i}.jpg", make_jpeg(180 + 10 * i, 140)) for i in range(6)])
    path = tmp_path / "build.yaml"
    path.write_text(yaml.safe_dump(to_dict(download_only(tmp_path / "dag", urls, shard_size=2))))
    return path, urls


def test_shards_above_max_map_length_run_as_batches(tiny_config, tmp_path):
    config, urls = tiny_config
    conf = {"config_path": str(config)}
    run = drive(tmp_path, "test", _write(tmp_path / "conf.json", [conf]),
                env={"AIRFLOW__CORE__MAX_MAP_LENGTH": "2"})[0]  # 3 shards, at most 2 mapped tasks
    assert run["state"] == "success", run
    assert run["tis"]["download"] == 2 and run["tis"]["pack"] == 2  # [0, 1] and [2]
    assert sorted(p.name for p in (tmp_path / "dag" / "_state" / "download").glob("part-*.json")) == [
        "part-00000.json", "part-00001.json", "part-00002.json"]
    build(download_only(tmp_path / "cli", urls, shard_size=2))
    assert table_hash(tmp_path / "dag", "images") == table_hash(tmp_path / "cli", "images")


def test_config_changed_after_prepare_fails_the_next_task_without_retries(tiny_config, tmp_path):
    config, _ = tiny_config
    changed = tmp_path / "changed.yaml"
    changed.write_text(config.read_text().replace("timeout: 2", "timeout: 3"))
    assert changed.read_text() != config.read_text()
    # regionset's interpreter, wrapped: once prepare has pinned the run's config, the config file is
    # edited (as a person editing it on the store between two tasks would)
    wrapper = tmp_path / "python-then-edit"
    wrapper.write_text(f"""#!/bin/sh
"{sys.executable}" "$@"
rc=$?
if ls "{tmp_path / 'dag'}"/_state/runs/*/config.sha256 >/dev/null 2>&1 && [ ! -e "{tmp_path / 'edited'}" ]; then
  cp "{changed}" "{config}" && touch "{tmp_path / 'edited'}"
fi
exit $rc
""")
    wrapper.chmod(0o755)
    conf = {"config_path": str(config), "regionset_python": str(wrapper)}
    run = drive(tmp_path, "test", _write(tmp_path / "conf.json", [conf]))[0]
    assert run["state"] == "failed", run
    assert run["states"]["prepare"] == ["success"] and run["states"]["download"] == ["failed"]
    assert run["tries"]["download"] == 1  # failed at once: the retry policy saw the config change
    assert not (tmp_path / "dag" / "_state" / "download").exists()  # no shard built with the new config
    log = (tmp_path / "driver-test.log").read_text()
    lines = [line for line in log.splitlines() if "config changed: run manual__" in line]
    assert lines and "prepare pinned config" in lines[0] and "now resolve to" in lines[0], log[-3000:]
    assert os.path.exists(tmp_path / "edited")


@pytest.mark.slow
def test_s3_config_output_catalog_and_training_land_on_the_store(server, s3, tmp_path, monkeypatch, capsys):  # noqa: F811
    """``config_path`` on the store, an ``s3://`` output, training on: nothing a later task or a person
    needs stays on the worker: the pinned config, the catalog (read by ``regionset sql`` from another
    cache folder) and the checkpoints are all objects."""
    urls = write_urls(tmp_path, [server.add(f"s{i}.jpg", make_jpeg(180 + 10 * i, 140)) for i in range(4)])
    config_url = s3.url("dagcfg/build.yaml")
    as_path(config_url).write_text(yaml.safe_dump(to_dict(download_only(s3.url("dagout"), urls, shard_size=2))))
    trainset = as_path(s3.url("dagtrain"))
    for i, path in enumerate(write_synthetic_shards(str(tmp_path / "synth"), num_shards=1, rows_per_shard=16, size=64)):
        (trainset / "train" / Path(path).name).write_bytes(Path(path).read_bytes())
        (trainset / "_state" / "pack" / f"part-{i:05d}.json").write_text(json.dumps({"stage": "pack", "shard": i}))
    conf = {"config_path": config_url, "train": True, "train_kind": "rice",
            "train_config": str(REPO / "training" / "configs" / "rice-tiny.yaml"),
            "train_overrides": [f"data.train_dir={trainset}", "loop.steps=2", "loop.save_every=2", "export=false",
                                "data.batch_size=8", "data.num_workers=0"],
            "train_out_dir": s3.url("dagtrain/rice-run")}
    run = drive(tmp_path, "test", _write(tmp_path / "conf.json", [conf]))[0]
    assert run["state"] == "success", run
    keys = s3.keys("dagout")
    assert "catalog.duckdb" in keys and any(k.endswith("/config.sha256") for k in keys)
    assert "checkpoints/step-00000002/complete.json" in s3.keys("dagtrain/rice-run")
    monkeypatch.setenv("REGIONSET_CATALOG_DIR", str(tmp_path / "another-host"))
    capsys.readouterr()
    assert main(["sql", s3.url("dagout"), "SELECT count(*) AS n FROM images"]) == 0
    assert "4" in capsys.readouterr().out
    assert list((tmp_path / "another-host").glob("*.duckdb.version"))  # the store's copy, downloaded
