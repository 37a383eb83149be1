"""Airflow 3 DAG ``regionset``: the build pipeline as tasks, mapped per shard.

    prepare -> download[shard] -> detect[shard] -> ocr[shard] -> embed[shard] -> fit_kmeans
            -> assign[shard] -> pack[shard] -> catalog -> train (off unless params.train)

Every task calls ``pipelines.tasks`` (the same functions ``regionset build`` is made of), with the
build config at ``params.config_path`` (plus ``params.overrides``). Per-shard steps are dynamically
mapped over the shard ids ``prepare`` returns; tasks are idempotent through the completion markers,
so a retried task or a re-triggered run only does what is missing. A step that this build does not
include runs as a no-op. Only ``pipelines.tasks`` (stdlib imports) is imported at parse time;
the pipeline modules, torch and the models load inside the tasks.

Trigger: ``airflow dags trigger regionset -c '{"config_path": "/data/build.yaml"}'``.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, get_current_context, task

from pipelines.tasks import DAG_STEPS, GLOBAL, SHARD

DAG_ID = "regionset"


def _params() -> tuple[str, list[str]]:
    params = get_current_context()["params"]
    if not params.get("config_path"):
        raise ValueError("DAG param config_path is empty: trigger with -c '{\"config_path\": \"build.yaml\"}'")
    return params["config_path"], list(params.get("overrides") or [])


@task
def prepare() -> list[int]:
    """Shard the input list, write the lineage; the shard ids feed every mapped task."""
    from pipelines.tasks import prepare_build

    return prepare_build(*_params())


@task(retries=2, retry_delay=timedelta(seconds=30))
def stage_shard(step: str, shard: int) -> dict:
    """One stage × shard (a no-op when its marker is already there)."""
    from pipelines.tasks import run_stage_shard

    config_path, overrides = _params()
    return run_stage_shard(config_path, step, shard, overrides)


@task(retries=1)
def global_step(step: str) -> dict:
    """One global step over all shards (e.g. the k-means fit)."""
    from pipelines.tasks import run_global

    config_path, overrides = _params()
    return run_global(config_path, step, overrides)


@task
def catalog() -> str:
    """Record the run and rebuild ``catalog.duckdb``."""
    from pipelines.tasks import finalize

    config_path, overrides = _params()
    return finalize(config_path, overrides, executor="airflow")


@task
def train() -> str:
    """Train off ``train/`` shards when ``params.train`` is true (off by default)."""
    params = get_current_context()["params"]
    if not params.get("train"):
        return "skipped: params.train is false"
    from pipelines.tasks import train as run_training

    run_training(params["train_kind"], params["train_config"], list(params.get("train_overrides") or []))
    return f"trained {params['train_kind']}"


@dag(
    dag_id=DAG_ID,
    schedule=None,
    catchup=False,
    max_active_runs=1,  # one writer per output folder
    tags=["regionset"],
    params={
        "config_path": Param("", type="string", description="path of the build config YAML"),
        "overrides": Param([], type="array", description="key=value overrides of the build config"),
        "train": Param(False, type="boolean", description="run the training task after the build"),
        "train_kind": Param("rice", enum=["rice", "croc"]),
        "train_config": Param("", type="string", description="training config YAML"),
        "train_overrides": Param([], type="array"),
    },
    doc_md=__doc__,
)
def regionset():
    shards = prepare()
    upstream = shards
    for step, kind in DAG_STEPS:
        if kind == SHARD:
            node = stage_shard.override(task_id=step).partial(step=step).expand(shard=shards)
        elif kind == GLOBAL:
            node = global_step.override(task_id=step)(step=step)
        else:  # pragma: no cover - DAG_STEPS is checked by tests
            raise ValueError(f"unknown step kind {kind!r} of {step}")
        upstream >> node
        upstream = node
    done = catalog()
    upstream >> done
    done >> train()


regionset()
