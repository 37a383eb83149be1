#!/usr/bin/env bash
# Install regionset into the current Python (3.11 or 3.12). Used by the README's two commands and .ci/run.
#   bash install.sh          core: torch + regionset with its pinned model stack
#   bash install.sh --dev    also test tools and every extra the tests exercise (ray, spark, airflow venv,
#                            chromium for the report's browser test)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python}
PIP="$PY -m pip install --disable-pip-version-check --progress-bar off"

# 1. torch: the machine's pip constraint caps torch at 2.14.1 (a CUDA build that also runs on CPU).
$PIP "torch==2.14.1" "torchvision==0.29.1"

# 2. regionset and its dependencies (img2dataset, open_clip, ultralytics, rapidocr, faiss, duckdb, ...).
if [ "${1:-}" = "--dev" ]; then
  $PIP -e ".[dev,ray,spark]"
else
  $PIP -e .
fi

# 3. OpenCV: ultralytics/rapidocr want opencv-python, img2dataset/albumentations opencv-python-headless;
#    both write the same cv2/ folder. Both are pinned to one version in pyproject.toml; reinstalling the
#    headless one last makes the winner deterministic (no libGL needed).
$PIP --force-reinstall --no-deps "opencv-python-headless==4.14.0.94"

# 4. --dev: Airflow 3 in its own virtualenv .venv-airflow (it pins sqlalchemy, fastapi, ... of its own),
#    and Debian's chromium + chromedriver for the report's browser test.
if [ "${1:-}" = "--dev" ]; then
  bash dags/install_airflow.sh "$PY"
  bash .ci/install_chromium.sh
fi
# 5. Check the imports. `import regionset.models` first: it sets regionset's offline switches (models/__init__.py),
#    so nothing calls home (albumentations otherwise asks pypi.org for a newer version at import).
$PY -c "import regionset.models, cv2, torch, open_clip, ultralytics, rapidocr_onnxruntime, faiss, duckdb, img2dataset" \
  && echo "regionset installed: $($PY -c 'import importlib.metadata as m; print(m.version("regionset"))')"
