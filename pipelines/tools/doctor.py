"""``regionset doctor [CONFIG.yaml] [key=value ...]``: the build's preflight plus the environment.

Prints one table of ok / warn / fail rows: package versions, what torch, onnxruntime and faiss see
of CUDA, Java, the Airflow venv when present, then every preflight check of the config (defaults
when none is given). Returns 1 when any row fails. The first thing to run on a new cluster.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from regionset.models.registry import package_version
from regionset.pipelines.config import load_config
from regionset.pipelines.preflight.checks import Check, ok, warn
from regionset.pipelines.preflight.cluster import MIN_JAVA, java_version
from regionset.pipelines.preflight.run import iter_checks

# (distribution, needed by a default build)
PACKAGES = (
    ("regionset", True), ("torch", True), ("torchvision", True), ("open_clip_torch", True),
    ("faiss-cpu", False), ("faiss-gpu", False), ("onnxruntime", False), ("onnxruntime-gpu", False),
    ("rapidocr-onnxruntime", True), ("ultralytics", True), ("img2dataset", True), ("pyarrow", True),
    ("duckdb", True), ("ray", False), ("pyspark", False),
)
AIRFLOW_VENV = ".venv-airflow"
_STATUS_STYLE = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[bold red]fail[/]"}


def package_checks() -> Iterator[Check]:
    """Installed versions; a missing core package fails, a missing optional one is only shown."""
    yield ok("python", "", f"{platform.python_version()} ({sys.executable})")
    for dist, needed in PACKAGES:
        version = package_version(dist)
        if version != "?":
            yield ok(dist, "", version)
        elif needed:
            yield Check(dist, "fail", "", "not installed; run: bash install.sh (or pip install -e .)")
    if package_version("onnxruntime") == package_version("onnxruntime-gpu") == "?":
        yield Check("onnxruntime", "fail", "", "not installed; run: pip install onnxruntime")
    if package_version("faiss-cpu") == package_version("faiss-gpu") == "?":
        yield Check("faiss", "fail", "", "not installed; run: pip install faiss-cpu")


def gpu_checks() -> Iterator[Check]:
    """CUDA as torch, onnxruntime and faiss each see it (no GPU is a warning, not a failure)."""
    try:
        import torch

        if torch.cuda.is_available():
            names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
            yield ok("torch CUDA", "", f"{torch.cuda.device_count()} GPU(s): {', '.join(names)}; CUDA {torch.version.cuda}")
        else:
            yield warn("torch CUDA", "", f"no GPU visible (torch {torch.__version__}, built for CUDA "
                       f"{torch.version.cuda}); embed/detect run on CPU")
    except Exception as e:  # a broken torch install is reported, not raised
        yield Check("torch CUDA", "fail", "", f"import torch failed: {e}")
    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
        gpu = [p for p in providers if p.startswith(("CUDA", "TensorRT"))]
        yield (ok if gpu else warn)("onnxruntime GPU", "", ", ".join(providers))
    except Exception as e:
        yield Check("onnxruntime GPU", "fail", "", f"import onnxruntime failed: {e}")
    try:
        import faiss

        n = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        yield (ok if n else warn)("faiss GPU", "", f"{n} GPU(s) (k-means and assignment use them)" if n
                                  else "CPU only (faiss-cpu or no GPU visible)")
    except Exception as e:
        yield Check("faiss GPU", "fail", "", f"import faiss failed: {e}")


def tool_checks() -> Iterator[Check]:
    """Java (for Spark) and the Airflow venv, when present."""
    java, major = java_version()
    if java and (not major or major >= MIN_JAVA):
        yield ok("java", "", f"{java} (Java {major or '?'})")
    else:
        yield warn("java", "", f"Java {MIN_JAVA}+ not found ({java or 'no java on PATH'}): needed only by "
                   "executor.name=spark")
    roots = {Path.cwd(), Path(__file__).resolve().parents[2]}
    venvs = [r / AIRFLOW_VENV for r in sorted(roots) if (r / AIRFLOW_VENV / "bin" / "python").is_file()]
    if not venvs:
        yield ok("airflow", "", f"no {AIRFLOW_VENV} (optional: bash dags/install_airflow.sh)")
        return
    venv = venvs[0]
    code = "import airflow, regionset.pipelines.tasks; print(airflow.__version__)"
    try:
        proc = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
        if proc.returncode == 0:
            yield ok("airflow", "", f"{proc.stdout.strip().splitlines()[-1]} in {venv}, imports regionset")
        else:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            yield Check("airflow", "fail", "", f"{venv}: {last}; re-run bash dags/install_airflow.sh")
    except subprocess.TimeoutExpired:
        yield warn("airflow", "", f"{venv}: importing airflow took over 120 s")


def doctor(config: str | None, overrides: list[str]) -> int:
    """Print the doctor table for ``config`` (+ overrides); 1 when any row fails, else 0.

    Args:
        config: a build YAML, or None for the defaults.
        overrides: ``key=value`` overrides.
    """
    from rich.table import Table

    from regionset.pipelines.core.progress import out_console

    cfg = load_config(config, overrides)
    checks = [*package_checks(), *gpu_checks(), *tool_checks(), *iter_checks(cfg)]
    table = Table(title=f"regionset doctor: {config or '(defaults)'} executor={cfg.executor.name}",
                  title_justify="left")
    for col in ("status", "check", "key", "detail"):
        table.add_column(col, overflow="fold")
    for c in checks:
        table.add_row(_STATUS_STYLE[c.status], c.name, c.key, c.detail)
    out_console.print(table)
    failed = [c for c in checks if c.status == "fail"]
    if failed:
        out_console.print(f"[bold red]{len(failed)} check(s) failed[/]: " + "; ".join(c.name for c in failed))
        return 1
    return 0
