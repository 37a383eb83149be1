#!/usr/bin/env bash
# Install regionset into the current Python (3.11 or 3.12). Used by the README's two commands and .ci/run.
#   bash install.sh           core: torch + regionset with its pinned model stack
#   bash install.sh --dev     also test tools and every extra the tests exercise (ray, spark, airflow venv,
#                             chromium for the report's browser test)
#   ... --latest              without the constraints files: the newest releases pyproject.toml allows
#                             (finds upstream drift on purpose; `bash .ci/run --latest` runs the suite so)
# By default every pip step is constrained by constraints/regionset.txt (the Airflow venv by
# constraints/airflow.txt): the exact set the suite last passed with, so the README's commands install
# the same versions on any machine on any later day. `bash constraints/update.sh` re-resolves and
# rewrites them (docs/install.md "Pinned versions").
set -euo pipefail
cd "$(dirname "$0")"
DEV=0
LATEST=0
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    --latest) LATEST=1 ;;
    *) echo "install.sh: unknown option $arg (use --dev and/or --latest)" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python}
PIP="$PY -m pip install --disable-pip-version-check --progress-bar off"
if [ "$LATEST" = 0 ]; then
  PIP="$PIP -c constraints/regionset.txt"
fi

# 1. torch: the machine's pip constraint caps torch at 2.14.1 (a CUDA build that also runs on CPU).
$PIP "torch==2.14.1" "torchvision==0.29.1"

# 2. regionset and its dependencies (img2dataset, open_clip, ultralytics, rapidocr, faiss, duckdb, ...).
if [ "$DEV" = 1 ]; then
  $PIP -e ".[dev,ray,spark]"
else
  $PIP -e .
fi

# 3. OpenCV: ultralytics/rapidocr want opencv-python, img2dataset/albumentations opencv-python-headless;
#    both write the same cv2/ folder. Both are pinned to one version in pyproject.toml; reinstalling the
#    headless one last makes the winner deterministic (no libGL needed).
$PIP --force-reinstall --no-deps "opencv-python-headless==4.14.0.94"

# 4. --dev: Airflow 3 (with its Celery and Postgres extras) in its own virtualenv .venv-airflow (it pins
#    sqlalchemy, fastapi, ... of its own), Debian's redis-server + postgresql for the scheduler tests
#    (tests/dags/scheduler.py), and Debian's chromium + chromedriver for the report's browser test.
if [ "$DEV" = 1 ]; then
  if [ "$LATEST" = 1 ]; then bash dags/install_airflow.sh "$PY" --latest; else bash dags/install_airflow.sh "$PY"; fi
  bash dags/install_services.sh
  bash .ci/install_chromium.sh
fi
# 5. Check the imports. `import regionset.models` first: it sets regionset's offline switches (models/__init__.py),
#    so nothing calls home (albumentations otherwise asks pypi.org for a newer version at import).
$PY -c "import regionset.models, cv2, torch, open_clip, ultralytics, rapidocr_onnxruntime, faiss, duckdb, img2dataset" \
  && echo "regionset installed: $($PY -c 'import importlib.metadata as m; print(m.version("regionset"))')"
