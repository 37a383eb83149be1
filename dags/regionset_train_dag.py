"""Airflow 3 DAG ``regionset_train``: train RICE or Croc on the shards a ``regionset`` build just committed.

    build (which build: the asset event; in Airflow) -> train (in regionset's interpreter)

Scheduled on the ``regionset-train`` asset alias: every ``regionset`` build that commits announces
its output's ``train/`` Asset through it (``regionset_shared.py``), and Airflow starts this DAG. The
``build`` task reads the triggering asset event (a manual run: the alias's newest event) and returns
the ``train/`` folder (the event's Asset URI, ``file://`` made a path again), the build's run id and
its config hash; ``train`` runs ``regionset.pipelines.tasks.train_on_build`` in regionset's
interpreter (chosen as the build DAG's tasks choose it), which trains with ``data.train_dir`` and
``data.build_run`` set from the event, so every checkpoint's lineage names the build run.

Checkpoints go to ``<out_dir>/<kind>/<build run id>`` (characters other than letters, digits,
``._-`` made ``_``): one training run per build; a rerun for the same build resumes or finds it done.

Settings: each param, else the same key of the Airflow Variable ``regionset_train`` (JSON), else the
default; an asset-triggered run has no params of its own, so a deployment sets the Variable:
``airflow variables set regionset_train '{"kind": "rice", "config_path": "/etc/rice.yaml", "out_dir": "s3://bucket/runs"}'``.

Trigger by hand (trains on the newest build):
``airflow dags trigger regionset_train -c '{"kind": "croc", "out_dir": "s3://bucket/runs"}'``.
"""

from __future__ import annotations

import re

from airflow.sdk import Param, dag, task
from regionset_shared import PYTHON, TRAIN_ALIAS, announce_training, build_of

DAG_ID = "regionset_train"
SETTINGS = "regionset_train"  # the Airflow Variable (JSON) an asset-triggered run takes its settings from


def setting(key: str, default: object) -> str:
    """A template: the run's param ``key``, else the key of the Variable ``regionset_train``, else ``default``.

    An asset-triggered run has only the params' defaults (empty here), so a deployment sets
    ``{"kind": "croc", "config_path": ..., "overrides": [...], "out_dir": "s3://..."}`` there once.
    """
    return f"{{{{ params.{key} or var.json.get({SETTINGS!r}, {{}}).get({key!r}, {default!r}) }}}}"


@task(inlets=[TRAIN_ALIAS])
def build(out_dir: str, kind: str, **context) -> dict:
    """The build to train on, from the asset event that started this run (or the newest one), and
    where its checkpoints go (``out_dir``)."""
    built = build_of(context)
    return {**built, "out_dir": run_dir(out_dir, kind, built["build_run"])}


def run_dir(out_dir: str, kind: str, build_run: str) -> str:
    """``<out_dir>/<kind>/<build run id>`` with the run id made a safe path segment (``''``: no out_dir)."""
    if not out_dir:
        return ""
    return f"{out_dir.rstrip('/')}/{kind}/{re.sub(r'[^A-Za-z0-9._-]', '_', build_run)}"


@task.external_python(python=PYTHON, expect_airflow=False, post_execute=announce_training)
def train(kind: str, config_path: str, overrides: list, built: dict) -> dict:
    """Train ``kind`` on the build's ``train/`` shards, naming its run in every checkpoint's lineage."""
    from regionset.pipelines.tasks import train_on_build

    return train_on_build(kind, config_path, list(overrides or []), built["train_url"], built["build_run"],
                          built["out_dir"])


@dag(
    dag_id=DAG_ID,
    schedule=TRAIN_ALIAS,
    catchup=False,
    max_active_runs=1,  # one training run at a time; queued builds start the next one
    tags=["regionset"],
    render_template_as_native_obj=True,
    params={  # empty: the Variable regionset_train's key, else the default (setting())
        "kind": Param("", enum=["", "rice", "croc"], description="empty: rice"),
        "config_path": Param("", type="string",
                             description="training config YAML (empty: the kind's defaults + overrides)"),
        "overrides": Param([], type="array", description="key=value overrides of the training config"),
        "out_dir": Param("", type="string",
                         description="checkpoints go to OUT_DIR/KIND/BUILD_RUN (a path or s3:// URL; "
                                     "empty: the config's loop.out_dir)"),
        "regionset_python": Param("", type="string",
                                  description="regionset's interpreter (empty: as the regionset DAG chooses it)"),
    },
    doc_md=__doc__,
)
def regionset_train():
    kind = setting("kind", "rice")
    built = build(out_dir=setting("out_dir", ""), kind=kind)
    train(kind=kind, config_path=setting("config_path", ""), overrides=setting("overrides", []), built=built)


regionset_train()
