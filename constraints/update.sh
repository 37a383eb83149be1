#!/usr/bin/env bash
# Re-resolve the tested set and rewrite the constraints files, in one command.
#
#   bash constraints/update.sh [--no-tests] [PYTEST_ARGS...]
#
# 1. a fresh virtualenv (and a fresh Airflow venv) in a temporary folder;
# 2. `bash install.sh --dev --latest` into it: the newest releases the pyproject ranges allow;
# 3. `pip freeze` of both venvs written to constraints/regionset.txt and constraints/airflow.txt;
# 4. the whole default test suite (`python -m pytest`) against that set; if it fails, the old files
#    are put back and the script exits 1 naming the log, so a red set is never pinned.
# --no-tests skips step 4 (only for a look at what would change: the result is not a tested set).
# Env: CI_PYTHON (default python3): the interpreter the venvs are made from.
set -euo pipefail
cd "$(dirname "$0")/.."
run_tests=1
if [ "${1:-}" = "--no-tests" ]; then run_tests=0; shift; fi
work="$(mktemp -d)"
log="$work/update.log"
echo "constraints/update.sh: working in $work (log: $log)"
"${CI_PYTHON:-python3}" -m venv "$work/venv"
# shellcheck disable=SC1091
. "$work/venv/bin/activate"
export AIRFLOW_VENV="$work/venv-airflow"
bash install.sh --dev --latest >"$log" 2>&1 || { echo "install failed: see $log" >&2; exit 1; }

mkdir -p "$work/old"
cp constraints/regionset.txt constraints/airflow.txt "$work/old/" 2>/dev/null || true
python constraints/freeze.py "$work/venv/bin/python" > constraints/regionset.txt
python constraints/freeze.py "$AIRFLOW_VENV/bin/python" > constraints/airflow.txt
git --no-pager diff --stat -- constraints/ || true

if [ "$run_tests" = 1 ]; then
  if ! python -m pytest "$@" 2>&1 | tee -a "$log"; then
    cp "$work/old/"*.txt constraints/ 2>/dev/null || true
    echo "constraints/update.sh: the suite failed on the latest releases; constraints unchanged (log: $log)" >&2
    exit 1
  fi
fi
echo "constraints/update.sh: constraints/ rewritten; commit them, then 'bash install.sh --dev' re-pins your own venv"
