#!/usr/bin/env bash
# The GPU benchmarks as one command for the device machine (BENCHMARKS.md "GPU runs").
#
#   bash bench/gpu/wheels.sh            # here, once: .whl/ (ignored)
#   device tool: run command "bash bench/gpu/run.sh", carry [".whl"], timeout_s 600
#   bash bench/gpu/run.sh croc kmeans   # only these benches (a rerun)
#   bash bench/gpu/run.sh --dry-run     # here, on CPU: each bench at its smallest (arguments, imports)
#
# Order by value: ocr_cuda (OCR on onnxruntime's CUDA provider, only where onnxruntime-gpu is
# installed), modes (batched OCR and the fused regions step vs the separate stages, on CUDA), workers
# (1, 2 and 4 embed workers per GPU through the local executor, resources.gpus = 1/N), stages
# (detect + embed), rice, croc, kmeans (torch backend, no faiss GPU build needed; `bash bench/gpu/run.sh
# kmeans` runs it alone with the whole budget; `workers_regions` sweeps the fused step, by name only). Each
# runs under its own `timeout`; all of it stays under BUDGET seconds (default 540, leaving a rerun's
# time in a 15-minute lease). Logs: $OUT/env.log, $OUT/<bench>.log, $OUT/summary.txt (8 files; the
# device tool brings $OUT back; here they go to /tmp/regionset-gpu unless OUT is set).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
dry=0
if [ "${1:-}" = --dry-run ]; then dry=1; shift; fi
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(ocr_cuda modes workers stages rice croc kmeans)
out=${OUT:-/tmp/regionset-gpu}
mkdir -p "$out"
py=${PYTHON:-python3}
budget=${BUDGET:-$((dry ? 1200 : 540))}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 YOLO_OFFLINE=1 YOLO_AUTOINSTALL=False

if [ "$dry" = 0 ] && compgen -G ".whl/*.whl" >/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
elif [ "$dry" = 0 ]; then
  echo "no .whl/*.whl: run 'bash bench/gpu/wheels.sh' in this checkout and carry .whl" >&2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

{
  date -u
  command -v nvidia-smi >/dev/null && timeout 30 nvidia-smi
  timeout 120 "$py" - <<'PY'
import importlib.metadata as md
import platform

import torch

print("python", platform.python_version(), "| torch", torch.__version__, "| cuda", torch.version.cuda,
      "| available", torch.cuda.is_available())
if torch.cuda.is_available():
    free, total = torch.cuda.mem_get_info()
    print(torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0), f"{total / 2**30:.0f} GiB")
for name in ("numpy", "torchvision", "open_clip_torch", "timm", "transformers", "ultralytics",
             "rapidocr-onnxruntime", "onnxruntime", "opencv-python-headless", "faiss-cpu", "faiss-gpu"):
    try:
        version = md.version(name)
    except md.PackageNotFoundError:
        version = "-"
    print(name, version)
PY
} 2>&1 | tee "$out/env.log"

rows=()
run() {  # NAME SECONDS COMMAND...: run under timeout, log to $out/NAME.log, add a summary row
  local name=$1 secs=$2 left rc t0 status
  shift 2
  left=$((budget - SECONDS - 5))
  ((secs > left)) && secs=$left
  if ((secs < 30)); then
    echo "== $name: skipped, ${left}s left of the ${budget}s budget" | tee "$out/$name.log"
    rows+=("| $name | skipped | 0 | no time left |")
    return
  fi
  echo "== $name (timeout ${secs}s): $*" | tee "$out/$name.log"
  t0=$SECONDS
  timeout -k 10 "$secs" "$@" 2>&1 | tee -a "$out/$name.log"
  rc=${PIPESTATUS[0]}
  status=ran
  if ((rc == 124 || rc == 137)); then status="timed out"; elif ((rc != 0)); then status=failed; fi
  rows+=("| $name | $status | $((SECONDS - t0)) | exit $rc |")
}

skip() {  # NAME REASON
  echo "== $1: skipped: $2" | tee "$out/$1.log"
  rows+=("| $1 | skipped | 0 | $2 |")
}

for b in "${benches[@]}"; do
  if [ "$dry" = 1 ]; then
    case $b in
      ocr_cuda) run ocr_cuda 200 "$py" bench/stages.py --device cpu --runs 1 --images 4 --shards 1 --stages ocr ;;
      modes) run modes 300 "$py" bench/stages.py --device cpu --runs 1 --images 4 --shards 1 --modes batched,fused \
               --ocr-batch 4 ;;
      workers|workers_regions) run "$b" 300 "$py" bench/gpu_workers.py --device cpu --images 8 --shards 2 --runs 1 \
                --workers 1,2 --stage "$([ "$b" = workers ] && echo embed || echo regions)" ;;
      stages) run stages 400 "$py" bench/stages.py --device cpu --runs 1 --images 4 --shards 1 \
                --stages detect,embed --detect-backend ultralytics --clip ViT-B-32 --embed-batch 8 ;;
      rice) run rice 200 "$py" bench/train_rice.py --device cpu --step --skip-cpu --step-sizes tiny,4,1000 \
              --repeats 1 ;;
      croc) run croc 400 "$py" bench/train_croc.py --large --layers 1 --batch 1 --steps 1 ;;
      kmeans) run kmeans 200 "$py" bench/kmeans_torch.py --device cpu --n 3000 --d 64 --k 64 --runs 1 \
                --niter 2 --seeding random ;;
      *) skip "$b" "unknown bench (ocr_cuda, modes, workers, workers_regions, stages, rice, croc, kmeans)" ;;
    esac
    continue
  fi
  case $b in
    ocr_cuda)
      if timeout 60 "$py" -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" 2>/dev/null; then
        run ocr_cuda 150 "$py" bench/stages.py --device cuda --ocr-device cuda --stages ocr --runs 3 --images 64
      else
        skip ocr_cuda "onnxruntime has no CUDAExecutionProvider here (onnxruntime-gpu not installed: docs/install.md)"
      fi ;;
    modes)
      if timeout 60 "$py" -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" 2>/dev/null; then
        ocr_dev=cuda
      else
        ocr_dev=cpu
      fi
      run modes 200 "$py" bench/stages.py --device cuda --ocr-device "$ocr_dev" --modes batched,fused --runs 3 \
        --images 64 --ocr-batch 16 ;;
    workers) run workers 200 "$py" bench/gpu_workers.py --device cuda --stage embed --workers 1,2,4 --images 256 \
        --shards 16 --runs 2 ;;
    workers_regions)
      ocr_dev=$(timeout 60 "$py" -c "import onnxruntime as o; print('cuda' if 'CUDAExecutionProvider' in o.get_available_providers() else 'cpu')" 2>/dev/null || echo cpu)
      run workers_regions 240 "$py" bench/gpu_workers.py --device cuda --stage regions --ocr-device "$ocr_dev" \
        --workers 1,2,4 --images 64 --shards 16 --runs 1 ;;
    stages) run stages 240 "$py" bench/stages.py --device cuda --runs 3 ;;
    rice) run rice 120 "$py" bench/train_rice.py --device cuda --skip-cpu --repeats 3 ;;
    croc) run croc 180 "$py" bench/train_croc.py --device cuda --batch 8 --steps 6 ;;
    kmeans)  # the torch backend: nothing to carry (docs/kmeans-labels.md "Backends"); d = 768 last
      run kmeans 240 "$py" bench/kmeans_torch.py --device cuda --n 1000000,10000000 --d 64 --k 65536 \
        --runs 1 --seeding random --cpu-n 200000 --threads 16
      run kmeans768 150 "$py" bench/kmeans_torch.py --device cuda --n 1000000 --d 768 --k 65536 \
        --runs 1 --seeding random --cpu-n 100000 --threads 16
      run kmeanspp 150 "$py" bench/kmeans_torch.py --device cuda --n 1000000 --d 64 --k 65536 \
        --runs 1 --seeding kmeans++ --cpu-n 0 --threads 16 ;;
    *) skip "$b" "unknown bench (ocr_cuda, modes, workers, workers_regions, stages, rice, croc, kmeans)" ;;
  esac
done

{
  echo
  echo "GPU benches ($([ "$dry" = 1 ] && echo "dry run, CPU" || echo device)), ${SECONDS}s of ${budget}s; logs in $out"
  echo "| bench | status | seconds | note |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$out/summary.txt"
