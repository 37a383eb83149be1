"""The DAG as deployed (issue 35 items 3 and 5), through ``dag.test()`` on a tiny download-only build:
per-shard tasks batched to fit Airflow's ``max_map_length``, and a config changed after ``prepare``
failing the next task at once (no retries) with the one line naming the run and both hashes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from regionset.common.typed_config import to_dict
from regionset.pipelines.build import build
from tests.conftest import make_jpeg
from tests.dags.test_regionset_dag import _write, drive
from tests.helpers import download_only, table_hash, write_urls

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
