"""regionset.pipelines.tasks (what the Airflow DAG calls): same outputs as ``build``, idempotent, DAG shape in sync."""

from __future__ import annotations

import pytest
import yaml

from regionset.common.typed_config import ConfigError, to_dict
from regionset.pipelines.build import build
from regionset.pipelines.config import load_config
from regionset.pipelines.definition import GlobalStep, build_steps
from regionset.pipelines.steps import FUSED, OPT_IN, STEP_NAMES
from regionset.pipelines.tasks import (
    DAG_STEPS,
    GLOBAL,
    SHARD,
    finalize,
    prepare_build,
    run_global,
    run_stage_shard,
)
from tests.conftest import make_jpeg
from tests.helpers import download_only, write_urls
from tests.pipelines.snapshots import assert_same, markers, snapshot


def test_built_steps_are_the_declared_pipeline_in_order():
    unfused = [n for n in STEP_NAMES if n not in FUSED]  # a fused step replaces its parts: never both
    every = build_steps(load_config(None, ["progress=false", f"steps=[{','.join(unfused)}]"]))
    assert [(s.name, GLOBAL if isinstance(s, GlobalStep) else SHARD) for s in every] == [
        d for d in DAG_STEPS if d[0] not in FUSED]
    fused = build_steps(load_config(None, ["progress=false", "steps=[download,regions,fit_kmeans,assign,pack]"]))
    assert [s.name for s in fused] == ["download", "regions", "fit_kmeans", "assign", "pack"]
    with pytest.raises(ConfigError, match="regions replaces detect, ocr, embed; drop 'ocr'"):
        load_config(None, ["steps=[download,ocr,regions]"])
    default = build_steps(load_config(None, ["progress=false"]))
    assert [s.name for s in default] == [n for n in STEP_NAMES if n not in OPT_IN]
    subset = build_steps(load_config(None, ["progress=false", "steps=[pack,download,fit_kmeans]"]))
    assert [s.name for s in subset] == ["download", "fit_kmeans", "pack"]  # pipeline order, not config order


def test_tasks_give_the_same_output_as_build_and_rerun_as_no_ops(server, tmp_path):
    urls = [server.add(f"t{i}.jpg", make_jpeg(200 + 20 * i, 160)) for i in range(5)] + [server.url("status/404")]
    url_file = write_urls(tmp_path, urls)
    cfg_path = tmp_path / "build.yaml"
    cfg_path.write_text(yaml.safe_dump(to_dict(download_only(tmp_path / "tasks", url_file, shard_size=4))))

    shards = prepare_build(str(cfg_path))
    assert shards == [0, 1]
    results = [run_stage_shard(str(cfg_path), name, s) for name, kind in DAG_STEPS if kind == SHARD for s in shards]
    by_status = {(r["stage"], r["shard"]): r["status"] for r in results}
    assert by_status[("download", 0)] == "done" and by_status[("download", 1)] == "done"
    assert by_status[("pack", 0)] == "absent"  # not in this build's steps
    assert run_global(str(cfg_path), "fit_kmeans")["status"] == "absent"
    finalize(str(cfg_path))

    build(download_only(tmp_path / "cli", url_file, shard_size=4))
    assert_same(snapshot(tmp_path / "tasks"), snapshot(tmp_path / "cli"))

    before, hits = markers(tmp_path / "tasks"), dict(server.hits)
    assert prepare_build(str(cfg_path)) == shards
    assert {run_stage_shard(str(cfg_path), "download", s)["status"] for s in shards} == {"complete"}
    assert markers(tmp_path / "tasks") == before and server.hits == hits
