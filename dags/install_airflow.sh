#!/usr/bin/env bash
# Create .venv-airflow: Airflow 3 in its own venv, isolated from regionset's environment, with the
# celery and postgres extras (CeleryExecutor, the PostgreSQL metadata DB: tests/dags/scheduler.py).
#
# Airflow pins its own versions of sqlalchemy, starlette, fastapi, structlog, ... so it lives in a
# venv that sees none of regionset's packages (no --system-site-packages) and regionset none of
# Airflow's. The DAG's tasks run in regionset's interpreter through @task.external_python (Airflow's
# ExternalPythonOperator); this script records that interpreter in $VENV/regionset-python, the DAG's
# default when neither the run's param regionset_python nor the Airflow Variable regionset_python
# nor $REGIONSET_PYTHON names another one.
#
# Usage: dags/install_airflow.sh [PYTHON] [--latest]   (PYTHON: the interpreter regionset is installed
#        in; default: python3). The venv gets the exact set in constraints/airflow.txt (the one the
#        suite passed with); --latest installs without it. Re-running is cheap: pip keeps what matches.
# Env:   AIRFLOW_VENV (default: <repo>/.venv-airflow), AIRFLOW_VERSION (default: 3.3.2).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${1:-python3}"
CONSTRAINTS=(-c "$REPO/constraints/airflow.txt")
if [ "${2:-}" = "--latest" ] || [ -n "${AIRFLOW_VERSION:-}" ]; then CONSTRAINTS=(); fi  # another Airflow: unpinned
VENV="${AIRFLOW_VENV:-$REPO/.venv-airflow}"
VERSION="${AIRFLOW_VERSION:-3.3.2}"

if ! "$PYTHON" -c "import regionset.pipelines.tasks" 2>/dev/null; then
  echo "install_airflow.sh: $PYTHON cannot import regionset; run 'pip install -e $REPO' with it first" >&2
  exit 1
fi
REGIONSET_PY="$("$PYTHON" -c 'import sys; print(sys.executable)')"
if [ -x "$VENV/bin/python" ] && grep -q "include-system-site-packages = true" "$VENV/pyvenv.cfg"; then
  rm -rf "$VENV"  # made by an older install_airflow.sh that leaked site-packages: start clean
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${CONSTRAINTS[@]}" "apache-airflow[celery,postgres]==$VERSION"
echo "$REGIONSET_PY" > "$VENV/regionset-python"
"$VENV/bin/python" -c "import airflow; print('airflow', airflow.__version__, 'in $VENV; tasks run in $REGIONSET_PY')"
