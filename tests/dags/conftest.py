"""Where the DAG files are (the tests drive Airflow in its own venv: see airflow_driver.py)."""

from __future__ import annotations

from pathlib import Path

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
