"""Assets: the build DAG announces a committed build's ``train/`` and ``regions/`` Assets, and the
``regionset_train`` DAG trains on the announced ``train/`` shards with the build run in the lineage.

Driven in ``.venv-airflow`` through ``airflow_driver.py`` (see test_regionset_dag.py). The run of
``regionset_train`` by a real scheduler when the Asset updates: ``test_scheduler_local.py``.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from regionset.pipelines.tasks import committed_outputs
from tests.dags.conftest import DAGS_FOLDER
from tests.dags.test_regionset_dag import _write, demo_config, drive  # noqa: F401  (demo_config: a fixture)

REPO = Path(__file__).resolve().parents[2]
RICE_TINY = REPO / "training" / "configs" / "rice-tiny.yaml"
pytestmark = pytest.mark.airflow


def tiny_training(out_dir: Path) -> dict:
    """The Variable ``regionset_train`` of a tiny RICE run: 2 steps on CPU, checkpoints under ``out_dir``."""
    return {"kind": "rice", "config_path": str(RICE_TINY), "out_dir": str(out_dir),
            "overrides": ["loop.steps=2", "loop.save_every=2", "loop.log_every=1", "loop.warmup_steps=1",
                          "data.batch_size=2", "data.num_workers=0", "model.image_size=32",
                          "loss.num_tokens=32", "device=cpu", "export=false"]}


def _top_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {(n.module if isinstance(n, ast.ImportFrom) else n.names[0].name)
            for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)}


def test_shared_module_and_train_dag_import_nothing_of_regionset():
    assert _top_imports(DAGS_FOLDER / "regionset_shared.py") <= {
        "__future__", "os", "shutil", "sys", "urllib.parse", "pathlib", "airflow.sdk"}
    assert _top_imports(DAGS_FOLDER / "regionset_train_dag.py") <= {"__future__", "re", "airflow.sdk", "regionset_shared"}


def test_dags_declare_the_assets(tmp_path):
    got = drive(tmp_path, "check", pythonpath=False)  # parsed as Airflow's DAG processor does, without regionset
    assert got["import_errors"] == {}
    assert got["dags"]["regionset"]["outlets"] == {"catalog": ["alias:regionset-train", "alias:regionset-regions"]}
    train = got["dags"]["regionset_train"]
    assert train["schedule"] == ["alias:regionset-train"] and train["inlets"] == {"build": ["alias:regionset-train"]}


def test_only_a_committed_build_is_announced_with_valid_asset_uris(tmp_path):
    result = {"committed": True, "train": str(tmp_path / "out" / "train"), "regions": "s3://bucket/out/regions/",
              "run_id": "manual__2026-12-07T23:00:00+00:00", "config_hash": "0123456789abcdef", "output": "x",
              "shards": 2, "rows": {"train": 4, "regions": 9}, "missing": {}}
    got = drive(tmp_path, "announce", "build", _write(tmp_path / "ok.json", result), pythonpath=False)
    events = got["events"]
    assert got["inputs"] == [] and got["outputs"] == [(tmp_path / "out" / "train").as_uri(), "s3://bucket/out/regions"]
    by_alias = {e["source_alias_name"]: e for e in events}
    assert set(by_alias) == {"regionset-train", "regionset-regions"}
    assert by_alias["regionset-train"]["dest_asset_key"]["uri"] == (tmp_path / "out" / "train").as_uri()  # file://
    assert by_alias["regionset-regions"]["dest_asset_key"]["uri"] == "s3://bucket/out/regions"  # s3:// stays
    assert by_alias["regionset-train"]["extra"] == {"run_id": result["run_id"], "config_hash": "0123456789abcdef",
                                                   "output": "x", "shards": 2, "rows": {"train": 4, "regions": 9},
                                                   "table": "train"}
    partial = {**result, "committed": False, "missing": {"pack": 1}}
    assert drive(tmp_path, "announce", "build", _write(tmp_path / "partial.json", partial),
                 pythonpath=False) == {"events": [], "inputs": [], "outputs": []}


def test_training_reports_its_input_and_output_for_lineage_readers(tmp_path):
    result = {"kind": "rice", "train_dir": "s3://bucket/out/train", "out_dir": str(tmp_path / "runs" / "rice" / "r1"),
              "build_run": "r1", "steps": 2}
    got = drive(tmp_path, "announce", "train", _write(tmp_path / "train.json", result), pythonpath=False)
    assert got == {"events": [], "inputs": ["s3://bucket/out/train"],
                   "outputs": [(tmp_path / "runs" / "rice" / "r1").as_uri()]}


@pytest.mark.slow  # ~5 min on 2 busy cores: the build DAG (~4 min) then the training DAG (~50 s)
def test_build_announces_its_assets_and_regionset_train_trains_on_them(demo_config, tmp_path):  # noqa: F811
    out = tmp_path / "dag"
    build = drive(tmp_path, "test", _write(tmp_path / "build.json",
                                           [{"config_path": str(demo_config), "overrides": [f"output={out}"]}]))[0]
    assert build["state"] == "success", build
    events = drive(tmp_path, "events")
    assert {e["uri"]: e["aliases"] for e in events} == {(out / "train").as_uri(): ["regionset-train"],
                                                        (out / "regions").as_uri(): ["regionset-regions"]}
    extra = events[0]["extra"]
    record = json.loads((out / "_state" / "runs" / f"{build['run_id']}.json").read_text())  # named by the DAG run
    assert all(e["source_run_id"] == build["run_id"] and e["source_task_id"] == "catalog" for e in events)
    assert extra["run_id"] == build["run_id"] and extra["config_hash"] == record["config_hash"]
    assert extra["shards"] == 2 and extra["rows"]["train"] == build["returned"]["catalog"]["rows"]["train"] > 0
    assert extra["rows"]["regions"] > 0

    runs = tmp_path / "runs"
    settings = tiny_training(runs)
    # no params, as in an asset-triggered run: the settings come from the Variable regionset_train;
    # a manual run trains on the alias's newest event
    train = drive(tmp_path, "test", _write(tmp_path / "train.json", [{}]), "regionset_train",
                  _write(tmp_path / "variables.json", {"regionset_train": settings}))[0]
    assert train["state"] == "success", train
    built = train["returned"]["build"]
    assert built["train_url"] == str(out / "train") and built["build_run"] == build["run_id"]
    meta = json.loads((Path(built["out_dir"]) / "checkpoints" / "step-00000002" / "meta.json").read_text())
    assert Path(built["out_dir"]).parent == runs / "rice"
    lineage = meta["lineage"]
    assert lineage["build_run_id"] == build["run_id"] and lineage["build_run_named"] is True
    assert lineage["build_config_hash"] == extra["config_hash"] and lineage["build_dir"] == str(out)
    assert sum(s["rows"] for s in lineage["shards"]) == extra["rows"]["train"]

    (out / "_state" / "pack" / "part-00001.json").unlink()  # a partial build is not committed
    partial = committed_outputs(str(demo_config), [f"output={out}"], run_id=build["run_id"])
    assert partial["committed"] is False and partial["missing"] == {"pack": 1}
