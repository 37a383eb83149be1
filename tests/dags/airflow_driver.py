"""Drives the ``regionset`` DAG inside the Airflow venv; run by tests/dags with that venv's python.

Airflow and regionset live in separate environments, so the tests (in regionset's) run this script
with ``.venv-airflow/bin/python`` and read one JSON document from its last stdout line:

    airflow_driver.py check             parse the dags folder: import errors, tasks, params, which
                                        regionset dependencies the Airflow env can import
    airflow_driver.py test CONF.json [DAG_ID [VARIABLES.json]]
                                        ``dag.test(run_conf=CONF)`` once per conf in the JSON list
                                        (DAG_ID: ``regionset`` by default), after setting the Airflow
                                        Variables of VARIABLES (a JSON object; values not strings are
                                        stored as JSON): run id, state, task instances per task id,
                                        and the XCom each task returned
    airflow_driver.py announce build|train RESULT.json
                                        the ``post_execute`` hook of the build's commit task
                                        (``announce_build``) or of ``regionset_train.train`` on a
                                        task's result (no run): the asset events it records, as
                                        Airflow sends them, and what it reports for lineage readers
    airflow_driver.py events            every asset event in the metadata DB: URI, extra, source
                                        DAG / run / task, aliases

Only the standard library and Airflow are imported here. ``AIRFLOW_HOME`` must be set by the caller.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections import Counter
from pathlib import Path

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS_FOLDER))  # dag.test() only finds DAGs here
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
DAG_ID = "regionset"
REGIONSET_DEPS = ("regionset", "duckdb", "pyarrow", "torch")


def _dagbag():
    """The dags folder as Airflow's DAG processor reads it: a bundle whose folder is on ``sys.path``
    (the DAG files import ``regionset_shared`` from it)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=str(DAGS_FOLDER), bundle_path=DAGS_FOLDER)


def check() -> dict:
    """What the Airflow env sees of the dags folder."""
    bag = _dagbag()
    dag = bag.dags.get(DAG_ID)
    tasks = {t.task_id: {"upstream": sorted(t.upstream_task_ids), "mapped": bool(getattr(t, "is_mapped", False)),
                         "python": getattr(getattr(t, "partial_kwargs", {}), "get", lambda *_: None)("python")
                         or getattr(t, "python", None)}
             for t in (dag.tasks if dag else [])}
    policy = dag.get_task("download").partial_kwargs.get("retry_policy") if dag else None
    decide = (lambda text: policy.evaluate(Exception(text), 1, 3).action.value) if policy else (lambda text: None)
    assets = {d.dag_id: {"schedule": _names([getattr(d.timetable, "asset_condition", None)]),
                         "inlets": {t.task_id: _names(t.inlets) for t in d.tasks if t.inlets},
                         "outlets": {t.task_id: _names(t.outlets) for t in d.tasks if t.outlets}}
              for d in bag.dags.values()}
    return {"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "tasks": tasks, "dags": assets,
            "retry_on": {"config changed": decide("Process returned non-zero exit status 1.\nconfig changed: run r: x"),
                         "other": decide("Process returned non-zero exit status 1.\nConnectionError")},
            "params": {k: dag.params[k] for k in dag.params} if dag else {},
            "importable": [m for m in REGIONSET_DEPS if importlib.util.find_spec(m) is not None],
            "loaded": [m for m in REGIONSET_DEPS if m in sys.modules]}


def _names(objs: list) -> list[str]:
    """``alias:NAME`` / ``asset:URI`` for each asset alias / asset in ``objs``."""
    return [f"alias:{o.name}" if type(o).__name__ == "AssetAlias" else f"asset:{o.uri}"
            for o in objs if type(o).__name__ in ("AssetAlias", "Asset")]


def test(confs: list[dict], dag_id: str = DAG_ID, variables: dict | None = None) -> list[dict]:
    """``dag.test()`` once per run conf; the run id, state, task instances per task and unmapped XComs."""
    from airflow.models.variable import Variable
    from airflow.models.xcom import XComModel
    from airflow.utils import db
    from airflow.utils.session import create_session

    db.initdb()  # the sqlite metadata DB under AIRFLOW_HOME
    for key, value in (variables or {}).items():
        Variable.set(key, value if isinstance(value, str) else json.dumps(value))
    dag = _dagbag().dags[dag_id]
    runs = []
    for conf in confs:
        run = dag.test(run_conf=conf)
        tis = run.get_task_instances()
        with create_session() as session:
            rows = session.query(XComModel).filter_by(dag_id=dag_id, run_id=run.run_id, key="return_value",
                                                      map_index=-1).all()
            returned = {x.task_id: x.value for x in rows}
        runs.append({"run_id": run.run_id, "state": str(run.state), "tis": dict(Counter(ti.task_id for ti in tis)),
                     "failed": sorted({ti.task_id for ti in tis if str(ti.state) != "success"}),
                     "states": {t: sorted({str(ti.state) for ti in tis if ti.task_id == t}) for t in {ti.task_id for ti in tis}},
                     "tries": {t: max(ti.try_number for ti in tis if ti.task_id == t) for t in {ti.task_id for ti in tis}},
                     "returned": returned})
    return runs


def announce(hook: str, result: dict) -> dict:
    """What a ``post_execute`` hook records for a task's ``result``: the asset events, serialised as
    the task runner sends them, and the input/output URIs a hook-lineage reader (OpenLineage) gets."""
    sys.path.append(str(DAGS_FOLDER))
    from airflow.sdk.execution_time.context import OutletEventAccessors
    from airflow.sdk.execution_time.task_runner import _serialize_outlet_events
    from airflow.sdk.lineage import HookLineageCollector
    from regionset_shared import announce_build, announce_training

    context = {"outlet_events": OutletEventAccessors(), "task": object()}
    collector = HookLineageCollector()  # what Airflow uses when a lineage reader is installed
    (announce_build if hook == "build" else announce_training)(context, result, collector)
    lineage = collector.collected_assets
    return {"events": list(_serialize_outlet_events(context["outlet_events"])),
            "inputs": [i.asset.uri for i in lineage.inputs], "outputs": [o.asset.uri for o in lineage.outputs]}


def events() -> list[dict]:
    """Every asset event Airflow recorded, oldest first."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        return [{"uri": e.asset.uri, "extra": e.extra, "source_dag_id": e.source_dag_id,
                 "source_run_id": e.source_run_id, "source_task_id": e.source_task_id,
                 "aliases": sorted(a.name for a in e.source_aliases)}
                for e in session.query(AssetEvent).order_by(AssetEvent.id)]


if __name__ == "__main__":
    if sys.argv[1] == "check":
        result = check()
    elif sys.argv[1] == "events":
        result = events()
    elif sys.argv[1] == "announce":
        result = announce(sys.argv[2], json.loads(Path(sys.argv[3]).read_text()))
    else:
        extra = sys.argv[3:5]
        result = test(json.loads(Path(sys.argv[2]).read_text()), *extra[:1],
                      *[json.loads(Path(v).read_text()) for v in extra[1:]])
    print("\n" + json.dumps(result, default=str))
