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
a path or a URL such as ``s3://bucket/build.yaml``, empty for the defaults, plus ``params.overrides``).
``prepare`` pins the resolved config under the output (``OUT/_state/runs/<run>/config.yaml`` and its
hash); every later task resolves its own view and fails at once, without retries, in one line naming
the run and both hashes when the config changed mid-run.

``params.per_shard`` (default true) maps the per-shard steps over the shard ids ``prepare`` returns:
one Airflow task per stage × shard; above Airflow's ``max_map_length`` (1,024 by default) per stage ×
batch of consecutive shards, run in sequence (``params.shards_per_task`` sets the batch size; 0: the
fewest that fit). ``per_shard: false`` runs each stage as ONE task that drives the
configured executor over every shard (``overrides: ["executor.name=ray",
"executor.ray.address=auto"]``): big builds schedule shards on the Ray or Spark cluster, not as
thousands of Airflow tasks. Tasks are idempotent through the completion markers either way.

With an ``s3://`` output the catalog is kept on the store (``OUT/catalog.duckdb``, read there by
``regionset sql``), and ``train`` writes to ``params.train_out_dir`` (a URL or an absolute shared path).

``catalog`` declares the asset aliases ``regionset-train`` and ``regionset-regions`` as outlets and,
when the build committed, announces the output's ``train/`` and ``regions/`` Assets through them
(``regionset_shared.py``); ``regionset_train_dag.py`` trains on the announced ``train/``.

Trigger: ``airflow dags trigger regionset -c '{"config_path": "s3://bucket/build.yaml"}'``.
"""

from __future__ import annotations

import importlib.util
import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import Param, RetryDecision, RetryPolicy, dag, task
from airflow.sdk.configuration import conf
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
# Airflow refuses a map over more items ([core] max_map_length, 1,024 by default; enforced by the API
# server when prepare's result is stored): prepare batches the shards to fit, read here at parse time.
MAX_MAP_LENGTH = conf.getint("core", "max_map_length", fallback=1024)
CONFIG_CHANGED = "config changed: run "  # how a ConfigChangedError of regionset's run_config.py starts


class NoRetryOnConfigChange(RetryPolicy):
    """Fail at once, without the task's retries, when regionset says the run's config changed mid-run
    (the same task would fail the same way); every other failure is retried as configured. The
    exception reaches Airflow as the text of the external interpreter's error, so it is matched by its
    first words."""

    def evaluate(self, exception, try_number, max_tries, context=None):
        if CONFIG_CHANGED in str(exception):
            return RetryDecision.fail(reason="the run's config changed since prepare pinned it")
        return RetryDecision.default()


NO_RETRY_ON_CONFIG_CHANGE = NoRetryOnConfigChange()


@task.external_python(python=PYTHON, expect_airflow=False)
def prepare(config_path: str, overrides: list, per_shard: bool, dag_run_id: str, max_map_length: int,
            shards_per_task: int) -> list:
    """Shard the input list and write the lineage; returns what the per-shard steps map over.

    Takes the output's lock under this DAG run's id and pins the resolved config under the output
    (``OUT/_state/runs/<run>/config.yaml``); every later task checks both, ``catalog`` releases the
    lock. Per shard: the shard ids, or lists of consecutive shard ids when there are more shards than
    ``max_map_length`` (or ``shards_per_task`` > 1). Otherwise ``[None]``: one task per stage.
    """
    from regionset.pipelines.tasks import map_items, prepare_build

    shards = prepare_build(config_path, list(overrides or []), run_id=dag_run_id)
    return map_items(shards, bool(per_shard), int(max_map_length), int(shards_per_task or 0))


@task.external_python(python=PYTHON, expect_airflow=False, retries=2, retry_delay=timedelta(seconds=30),
                      retry_policy=NO_RETRY_ON_CONFIG_CHANGE)
def stage_shard(step: str, shard, config_path: str, overrides: list, dag_run_id: str) -> dict:
    """One stage × shard, or × a batch of shards in sequence (each a no-op when its marker is there);
    ``shard=None``: every shard, executor-driven."""
    from regionset.pipelines.tasks import run_stage_all, run_stage_shard

    if shard is None:
        return run_stage_all(config_path, step, list(overrides or []), run_id=dag_run_id)
    return run_stage_shard(config_path, step, shard, list(overrides or []), run_id=dag_run_id)


@task.external_python(python=PYTHON, expect_airflow=False, retries=1, retry_policy=NO_RETRY_ON_CONFIG_CHANGE)
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
def train(enabled: bool, kind: str, config_path: str, overrides: list, out_dir: str, build_config: str,
          build_overrides: list, dag_run_id: str) -> str:
    """Train off the build's ``train/`` shards when ``params.train`` is true (off by default); the
    output goes to ``out_dir`` (``params.train_out_dir``, else the training config's ``loop.out_dir``),
    which must be a URL or an absolute shared path: never the worker's own disk."""
    if not enabled:
        return "skipped: params.train is false"
    from regionset.pipelines.tasks import train as run_training

    where = run_training(kind, config_path, list(overrides or []), build_config=build_config,
                         build_overrides=list(build_overrides or []), run_id=dag_run_id, out_dir=out_dir)
    return f"trained {kind} into {where}"


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
        "train_out_dir": Param("", type="string",
                               description="loop.out_dir of the training task: a URL (s3://...) or an absolute "
                                           "shared path (empty: the training config's; a relative one is refused)"),
        "shards_per_task": Param(0, type="integer", minimum=0,
                                 description="per-shard mode: shards per mapped task (0: 1, or the fewest that "
                                             "keep the map within Airflow's max_map_length)"),
    },
    doc_md=__doc__,
)
def regionset():
    shards = prepare(config_path=CONFIG, overrides=OVERRIDES, per_shard=PER_SHARD, dag_run_id=RUN_ID,
                     max_map_length=MAX_MAP_LENGTH, shards_per_task="{{ params.shards_per_task }}")
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
                  config_path="{{ params.train_config }}", overrides="{{ params.train_overrides }}",
                  out_dir="{{ params.train_out_dir }}", build_config=CONFIG, build_overrides=OVERRIDES,
                  dag_run_id=RUN_ID)


regionset()
