"""Drives the ``regionset`` DAG inside the Airflow venv; run by tests/dags with that venv's python.

Airflow and regionset live in separate environments, so the tests (in regionset's) run this script
with ``.venv-airflow/bin/python`` and read one JSON document from its last stdout line:

    airflow_driver.py check             parse the dags folder: import errors, tasks, params, which
                                        regionset dependencies the Airflow env can import
    airflow_driver.py test CONF.json    ``dag.test(run_conf=CONF)`` once per conf in the JSON list:
                                        run state and task instances per task id

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
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


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
    return {"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "tasks": tasks,
            "retry_on": {"config changed": decide("Process returned non-zero exit status 1.\nconfig changed: run r: x"),
                         "other": decide("Process returned non-zero exit status 1.\nConnectionError")},
            "params": {k: dag.params[k] for k in dag.params} if dag else {},
            "importable": [m for m in REGIONSET_DEPS if importlib.util.find_spec(m) is not None],
            "loaded": [m for m in REGIONSET_DEPS if m in sys.modules]}


def test(confs: list[dict]) -> list[dict]:
    """``dag.test()`` once per run conf; the state and the number of task instances per task."""
    from airflow.utils import db

    db.initdb()  # the sqlite metadata DB under AIRFLOW_HOME
    dag = _dagbag().dags[DAG_ID]
    runs = []
    for conf in confs:
        run = dag.test(run_conf=conf)
        tis = run.get_task_instances()
        runs.append({"state": str(run.state), "tis": dict(Counter(ti.task_id for ti in tis)),
                     "failed": sorted({ti.task_id for ti in tis if str(ti.state) != "success"}),
                     "states": {t: sorted({str(ti.state) for ti in tis if ti.task_id == t}) for t in {ti.task_id for ti in tis}},
                     "tries": {t: max(ti.try_number for ti in tis if ti.task_id == t) for t in {ti.task_id for ti in tis}}})
    return runs


if __name__ == "__main__":
    if sys.argv[1] == "check":
        result = check()
    else:
        result = test(json.loads(Path(sys.argv[2]).read_text()))
    print("\n" + json.dumps(result))
