"""Airflow 3 DAG ``regionset``: the build pipeline as tasks, run in regionset's own interpreter.

    prepare -> download[shard] -> detect[shard] -> ocr[shard] -> embed[shard] -> fit_kmeans
            -> assign[shard] -> pack[shard] -> catalog -> train (off unless params.train)

Airflow and regionset live in separate environments (Airflow pins its own sqlalchemy, fastapi, ...;
regionset needs torch, pyarrow, duckdb, ...). Every task is ``@task.external_python``: Airflow runs
its callable in regionset's interpreter, which calls ``regionset.pipelines.tasks`` (the functions
``regionset build`` is made of). The interpreter is, first to last: the run's param
``regionset_python``, the Airflow Variable ``regionset_python``, ``$REGIONSET_PYTHON``, the one
``dags/install_airflow.sh`` recorded in the Airflow venv (``<venv>/regionset-python``), ``python3``.

This file imports neither regionset nor its dependencies (Airflow parses it in its own env): the
callables import inside their bodies, and take the build config as arguments (``params.config_path``,
empty for the defaults, plus ``params.overrides``).

``params.per_shard`` (default true) maps the per-shard steps over the shard ids ``prepare`` returns:
one Airflow task per stage × shard. ``per_shard: false`` runs each stage as ONE task that drives the
configured executor over every shard (``overrides: ["executor.name=ray",
"executor.ray.address=auto"]``): big builds schedule shards on the Ray or Spark cluster, not as
thousands of Airflow tasks. Tasks are idempotent through the completion markers either way.

``catalog`` declares the asset aliases ``regionset-train`` and ``regionset-regions`` as outlets and,
when the build committed, announces the output's ``train/`` and ``regions/`` Assets through them
(``regionset_shared.py``); ``regionset_train_dag.py`` trains on the announced ``train/``.

Trigger: ``airflow dags trigger regionset -c '{"config_path": "/data/build.yaml"}'``.
"""

from __future__ import annotations

import importlib.util
import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import Param, dag, task
from regionset_shared import PYTHON, REGIONS_ALIAS, TRAIN_ALIAS, announce_build

DAG_ID = "regionset"


def _pipeline_shape():
    """``pipelines/steps.py`` of the regionset source beside this folder (or ``$REGIONSET_SOURCE``),
    loaded by path: it imports nothing, so it loads where Airflow parses this file without regionset,
    and the DAG never holds a copy of the step list."""
    root = Path(os.environ.get("REGIONSET_SOURCE") or Path(__file__).resolve().parents[1])
    spec = importlib.util.spec_from_file_location("regionset_pipeline_steps", root / "pipelines" / "steps.py")
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no pipelines/steps.py under {root}; set REGIONSET_SOURCE to the regionset folder")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_SHAPE = _pipeline_shape()
SHARD, GLOBAL = _SHAPE.SHARD, _SHAPE.GLOBAL
STEPS: tuple[tuple[str, str], ...] = _SHAPE.PIPELINE  # the pipeline's shape, in order


CONFIG = "{{ params.config_path }}"
OVERRIDES = "{{ params.overrides }}"
PER_SHARD = "{{ params.per_shard }}"
RUN_ID = "{{ run_id }}"  # the DAG run holds the output's lock under it (prepare takes, catalog releases)


@task.external_python(python=PYTHON, expect_airflow=False)
def prepare(config_path: str, overrides: list, per_shard: bool, dag_run_id: str) -> list:
    """Shard the input list and write the lineage; returns what the per-shard steps map over.

    Takes the output's lock under this DAG run's id; every later task checks it, ``catalog`` releases
    it. Per shard: the shard ids. Otherwise ``[None]``: one task per stage, over every shard.
    """
    from regionset.pipelines.tasks import prepare_build

    shards = prepare_build(config_path, list(overrides or []), run_id=dag_run_id)
    return list(shards) if per_shard else [None]


@task.external_python(python=PYTHON, expect_airflow=False, retries=2, retry_delay=timedelta(seconds=30))
def stage_shard(step: str, shard, config_path: str, overrides: list, dag_run_id: str) -> dict:
    """One stage × shard (a no-op when its marker is there); ``shard=None``: every shard, executor-driven."""
    from regionset.pipelines.tasks import run_stage_all, run_stage_shard

    if shard is None:
        return run_stage_all(config_path, step, list(overrides or []), run_id=dag_run_id)
    return run_stage_shard(config_path, step, shard, list(overrides or []), run_id=dag_run_id)


@task.external_python(python=PYTHON, expect_airflow=False, retries=1)
def global_step(step: str, config_path: str, overrides: list, dag_run_id: str) -> dict:
    """One global step over all shards (e.g. the k-means fit)."""
    from regionset.pipelines.tasks import run_global

    return run_global(config_path, step, list(overrides or []), run_id=dag_run_id)


@task.external_python(python=PYTHON, expect_airflow=False, outlets=[TRAIN_ALIAS, REGIONS_ALIAS],
                      post_execute=announce_build)
def catalog(config_path: str, overrides: list, dag_run_id: str) -> dict:
    """Record the run, rebuild ``catalog.duckdb`` and release the run's lock; what the build committed.

    ``announce_build`` (after it, in Airflow) turns a committed build into asset events for the
    output's ``train/`` and ``regions/`` Assets (``regionset_shared.py``).
    """
    from regionset.pipelines.tasks import committed_outputs, finalize

    catalog_path = finalize(config_path, list(overrides or []), executor="airflow", run_id=dag_run_id)
    return {"catalog": catalog_path, **committed_outputs(config_path, list(overrides or []), run_id=dag_run_id)}


@task.external_python(python=PYTHON, expect_airflow=False)
def train(enabled: bool, kind: str, config_path: str, overrides: list) -> str:
    """Train off ``train/`` shards when ``params.train`` is true (off by default)."""
    if not enabled:
        return "skipped: params.train is false"
    from regionset.pipelines.tasks import train as run_training

    run_training(kind, config_path, list(overrides or []))
    return f"trained {kind}"


@dag(
    dag_id=DAG_ID,
    schedule=None,
    catchup=False,
    max_active_runs=1,  # one writer per output folder
    tags=["regionset"],
    render_template_as_native_obj=True,
    params={
        "config_path": Param("", type="string", description="build config YAML (empty: defaults + overrides)"),
        "overrides": Param([], type="array", description="key=value overrides of the build config"),
        "per_shard": Param(True, type="boolean",
                           description="one task per stage x shard; false: one task per stage driving executor.name"),
        "regionset_python": Param("", type="string",
                                  description="regionset's interpreter (empty: Variable regionset_python, "
                                              "then REGIONSET_PYTHON, then the one install_airflow.sh recorded)"),
        "train": Param(False, type="boolean", description="run the training task after the build"),
        "train_kind": Param("rice", enum=["rice", "croc"]),
        "train_config": Param("", type="string", description="training config YAML"),
        "train_overrides": Param([], type="array"),
    },
    doc_md=__doc__,
)
def regionset():
    shards = prepare(config_path=CONFIG, overrides=OVERRIDES, per_shard=PER_SHARD, dag_run_id=RUN_ID)
    upstream = shards
    for step, kind in STEPS:
        if kind == SHARD:
            node = (stage_shard.override(task_id=step)
                    .partial(step=step, config_path=CONFIG, overrides=OVERRIDES, dag_run_id=RUN_ID).expand(shard=shards))
        else:
            node = global_step.override(task_id=step)(step=step, config_path=CONFIG, overrides=OVERRIDES, dag_run_id=RUN_ID)
        upstream >> node
        upstream = node
    done = catalog(config_path=CONFIG, overrides=OVERRIDES, dag_run_id=RUN_ID)
    upstream >> done
    done >> train(enabled="{{ params.train }}", kind="{{ params.train_kind }}",
                  config_path="{{ params.train_config }}", overrides="{{ params.train_overrides }}")


regionset()
