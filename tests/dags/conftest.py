"""Airflow settings for the DAG tests; set before anything imports airflow (it reads them at import)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="regionset-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS_FOLDER))  # dag.test() only finds DAGs here
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
