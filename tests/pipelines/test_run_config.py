"""The config of an orchestrator run, pinned by ``prepare`` and checked by every later task
(``pipelines/core/run_config.py``): a config read from a URL, changed on the store mid-run, makes the
next task fail with one line naming the run and both hashes."""

from __future__ import annotations

import re

import fsspec
import pytest
import yaml

from regionset.common.storage import as_path
from regionset.common.typed_config import to_dict
from regionset.pipelines.core.fence import LockedError
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.run_config import (
    MESSAGE_START,
    ConfigChangedError,
    config_text,
    pinned_hash,
    pinned_path,
    run_folder_name,
    text_hash,
)
from regionset.pipelines.tasks import finalize, load_run, prepare_build, run_stage_shard
from tests.conftest import make_jpeg
from tests.helpers import download_only, write_urls
from tests.s3server import s3  # noqa: F401 (fixture)

RUN = "manual__2026-12-07T23:30:00.123+00:00"  # an Airflow run id: ':' and '+' in it


def _urls(server, tmp_path, n=5):
    return write_urls(tmp_path, [server.add(f"p{i}.jpg", make_jpeg(200 + 20 * i, 160)) for i in range(n)])


def test_run_folder_name_is_a_safe_distinct_name():
    assert run_folder_name("scheduled-1") == "scheduled-1"
    name = run_folder_name(RUN)
    assert name.startswith("manual__2026-12-07T23_30_00.123_00_00-") and ":" not in name and "+" not in name
    assert run_folder_name(RUN.replace("+", "-")) != name


def test_config_by_memory_url_pinned_then_changed_fails_the_next_task(server, tmp_path):
    fs = fsspec.filesystem("memory")
    url = "memory://afdag-configs/build.yaml"
    cfg = download_only(tmp_path / "out", _urls(server, tmp_path), shard_size=4)
    fs.pipe(url.removeprefix("memory:/"), yaml.safe_dump(to_dict(cfg)).encode())
    try:
        assert prepare_build(url, run_id=RUN) == [0, 1]
        out = Output(str(tmp_path / "out"))
        pinned = pinned_path(out, RUN)
        assert str(pinned) == str(tmp_path / "out" / "_state" / "runs" / run_folder_name(RUN) / "config.yaml")
        assert text_hash(pinned.read_text()) == pinned_hash(out, RUN)
        assert text_hash(config_text(load_run(url, None, RUN))) == pinned_hash(out, RUN)  # loads back the same
        assert run_stage_shard(url, "download", 0, run_id=RUN)["status"] == "done"

        fs.pipe(url.removeprefix("memory:/"), yaml.safe_dump(to_dict(cfg) | {"download": {
            **to_dict(cfg)["download"], "timeout": 3}}).encode())  # edited on the store mid-run
        with pytest.raises(ConfigChangedError) as err:
            run_stage_shard(url, "download", 1, run_id=RUN)
        message = str(err.value)
        assert "\n" not in message and message.startswith(MESSAGE_START + RUN)
        assert pinned_hash(out, RUN) in message and text_hash(config_text(load_run(url, None))) in message
        assert not (tmp_path / "out" / "_state" / "download" / "part-00001.json").exists()  # nothing ran

        fs.pipe(url.removeprefix("memory:/"), yaml.safe_dump(to_dict(cfg)).encode())  # restored: runs on
        assert run_stage_shard(url, "download", 1, run_id=RUN)["status"] == "done"
        finalize(url, run_id=RUN)  # the run records' reader skips the pinned folders
    finally:
        fs.rm(url.removeprefix("memory:/"))


def test_overrides_are_part_of_the_pinned_config(server, tmp_path):
    cfg_path = tmp_path / "build.yaml"
    cfg_path.write_text(yaml.safe_dump(to_dict(download_only(tmp_path / "out", _urls(server, tmp_path)))))
    prepare_build(str(cfg_path), ["download.timeout=2"], run_id="r1")
    assert prepare_build(str(cfg_path), ["download.timeout=2"], run_id="r1") == [0, 1]  # a retry: same pin
    with pytest.raises(ConfigChangedError, match="config changed: run r1: prepare pinned config"):
        run_stage_shard(str(cfg_path), "download", 0, ["download.timeout=4"], run_id="r1")
    elsewhere = f"output={tmp_path / 'elsewhere'}"  # the output moved: the run holds no lock there
    with pytest.raises(LockedError, match="is not held by run r1"):
        run_stage_shard(str(cfg_path), "download", 0, [elsewhere], run_id="r1")
    with pytest.raises(ConfigChangedError, match="run r1: .* pinned no config"):  # nor a pinned config
        run_stage_shard(str(cfg_path), "download", 0, [elsewhere, "output_lock=none"], run_id="r1")
    assert run_stage_shard(str(cfg_path), "download", 0, run_id=None)["status"] == "done"  # no run: no pin


def test_config_on_s3_changed_between_prepare_and_stage(server, s3, tmp_path):  # noqa: F811
    url = s3.url("configs/build.yaml")
    cfg = download_only(s3.url("pinned-out"), _urls(server, tmp_path), shard_size=4)
    as_path(url).write_text(yaml.safe_dump(to_dict(cfg)))
    assert prepare_build(url, run_id=RUN) == [0, 1]
    folder = f"_state/runs/{run_folder_name(RUN)}"
    assert {f"{folder}/config.yaml", f"{folder}/config.sha256"} <= set(s3.keys("pinned-out"))
    as_path(url).write_text(yaml.safe_dump(to_dict(cfg) | {"input": {**to_dict(cfg)["input"], "shard_size": 2}}))
    with pytest.raises(ConfigChangedError, match=f"^config changed: run {re.escape(RUN)}: prepare pinned config [0-9a-f]{{16}} "
                                                 r".*resolve to [0-9a-f]{16}; trigger a new run"):
        run_stage_shard(url, "download", 0, run_id=RUN)
