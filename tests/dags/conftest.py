"""Where the DAG files are (the tests drive Airflow in its own venv: see airflow_driver.py), and a
real Airflow deployment (scheduler, DAG processor, API server, PostgreSQL: ``scheduler.py``)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
FAULT_POINT = "shard_written:embed"  # the test fault the deployment's tasks carry, armed by a file


@pytest.fixture(scope="module")
def airflow_local():
    """Airflow with LocalExecutor on a private PostgreSQL, one per test module; killed at the end.

    Its tasks carry the test fault ``REGIONSET_FAILPOINT=shard_written:embed``, which fires once
    and only while the file ``airflow_local.fault_armed`` exists (``pipelines/core/failpoints.py``).
    """
    from tests.dags.scheduler import Airflow, why_not_available

    reason = why_not_available()
    if reason:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="rsaf-", dir="/tmp"))  # short: PostgreSQL's socket lives here
    armed = root / "fault-armed"
    af = Airflow(root, task_env={"REGIONSET_FAILPOINT": FAULT_POINT, "REGIONSET_FAILPOINT_ONCE": str(armed)})
    af.fault_armed = armed
    try:
        af.start(executor="LocalExecutor")
        af.wait_parsed("regionset_train")  # paused until a test wants it: every committed build would start it
        af.airflow("dags", "pause", "regionset_train")
        print(f"airflow (LocalExecutor) up in {af.timings['startup']:.1f} s under {root}")
        yield af
    finally:
        af.stop()
        shutil.rmtree(root, ignore_errors=True)  # failures print their logs first
