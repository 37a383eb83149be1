#!/usr/bin/env bash
# Create .venv-airflow: Airflow 3 in its own venv that still sees regionset and its model stack.
#
# Airflow pins its own versions of sqlalchemy, starlette, fastapi, structlog, ... that must not
# leak into the main environment, so it lives in a venv. The venv is made with
# --system-site-packages: DAG tasks import regionset (pipelines.tasks) and, through it, torch,
# open_clip, ultralytics, onnxruntime — reused from the base interpreter instead of installed twice
# (torch alone is ~4 GB). Airflow's own packages, installed in the venv, take precedence there.
#
# Usage: dags/install_airflow.sh [PYTHON]   (PYTHON: the interpreter regionset is installed in;
#        default: python3). Re-running is cheap: an existing venv with the right Airflow is kept.
# Env:   AIRFLOW_VENV (default: <repo>/.venv-airflow), AIRFLOW_VERSION (default: 3.3.2).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${1:-python3}"
VENV="${AIRFLOW_VENV:-$REPO/.venv-airflow}"
VERSION="${AIRFLOW_VERSION:-3.3.2}"

if ! "$PYTHON" -c "import pipelines.tasks" 2>/dev/null; then
  echo "install_airflow.sh: $PYTHON cannot import regionset; run 'pip install -e $REPO' with it first" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv --system-site-packages "$VENV"
fi
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('apache-airflow') != '$VERSION')" 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "apache-airflow==$VERSION"
fi
"$VENV/bin/python" -c "import airflow, pipelines.tasks; print('airflow', airflow.__version__, 'in $VENV')"
