#!/usr/bin/env bash
# Download the wheels that the GPU benches need and the device image lacks into .whl/ (ignored:
# this script adds /.whl/ to .git/info/exclude), for `bash bench/gpu/run.sh` on the device with
# carry [".whl"]. Run it in the checkout the device tool sends. See BENCHMARKS.md "GPU runs".
#
#   bash bench/gpu/wheels.sh          # PYTHON=... picks the pip (default: python3)
#
# The image has Python 3.12, torch 2.11 (CUDA 13), numpy, onnxruntime, opencv-python-headless,
# timm, transformers, scikit-image, scipy, pyarrow, pandas, rich, pyyaml (its package list is the
# device's KINDS.md). Missing on the benched paths (imports traced on CPU): open_clip_torch (+ ftfy,
# wcwidth) for embed and the RICE/Croc towers, ultralytics for detect, rapidocr-onnxruntime
# (+ pyclipper, shapely) for the OCR regions that embed crops. Versions: those tested on CPU.
# Left out: polars, ultralytics-thop, ultralytics-platform (imported only by ultralytics paths the
# benches do not take); duckdb, imagehash, img2dataset (not on these paths); faiss (below).
set -euo pipefail
cd "$(dirname "$0")/../.."
WHEELS=(open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 ultralytics==8.4.190
        rapidocr-onnxruntime==1.4.4 pyclipper==1.4.0 shapely==2.2.0)
LIMIT=$((64 << 20))  # the device tool's limit on what travels: working tree + carried paths

git check-ignore -q .whl || echo /.whl/ >>"$(git rev-parse --git-common-dir)/info/exclude"
rm -rf .whl
mkdir .whl
plat=()
for p in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
  plat+=(--platform "${p}_x86_64")
done
"${PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${plat[@]}" -d .whl "${WHEELS[@]}" 2> >(grep -v "is ignored" >&2)

size() { xargs -0 -r du -cb 2>/dev/null | awk 'END {print $1 + 0}'; }
whl=$(find .whl -name '*.whl' -print0 | size)
tree=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | size)
total=$((whl + tree))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
ls -1 .whl
echo "wheels $(mib "$whl") + working tree $(mib "$tree") (tracked + untracked not ignored)" \
     "= $(mib "$total") of the 64 MiB the device tool carries"
echo "faiss: not carried, so run.sh skips the k-means GPU bench. faiss-gpu 1.15.1 is a 129 MiB" \
     "wheel built for CUDA 12 that also needs the cu12 cuBLAS/cudart wheels (hundreds of MiB), the" \
     "image has CUDA 13, and pip finds no CUDA 13 faiss GPU wheel (faiss-gpu-cu13-cuvs: none);" \
     "faiss-cpu (18 MiB) is imported by bench/kmeans.py alone."
if ((total > LIMIT)); then
  echo "over the 64 MiB limit: carry fewer wheels" >&2
  exit 1
fi
