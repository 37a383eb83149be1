"""Preflight: what every build checks before any work and before taking the lock.

Each check answers a ``Check`` (ok / warn / fail, the config key, one line saying what to do).
``regionset build`` stops at the first failure with exit 2 (``PreflightError``); ``regionset doctor``
prints them all as a table. The checks: the chosen executor's extra is installed, the executor is
reachable within ``executor.connect_timeout`` (``cluster.py``), every model file
the config names is present and loadable (``models.py``), the output folder is
writable, and the free disk covers a rough estimate from the input size.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from regionset.common.storage import is_remote
from regionset.pipelines.config import BuildConfig
from regionset.pipelines.preflight.checks import Check, PreflightError, fail, ok, warn
from regionset.pipelines.preflight.cluster import executor_checks
from regionset.pipelines.preflight.gpus import gpu_checks
from regionset.pipelines.preflight.models import model_checks
from regionset.pipelines.preflight.storage import storage_checks

# Rough bytes written per input URL: the stored JPEG (image_size² × 3 bytes at ~10:1) is kept twice
# (images/ and train/); regions, embeddings and labels are small next to it.
JPEG_RATIO = 0.1
IMAGE_COPIES = 2
AVG_URL_ROW_BYTES = 100  # a URL + caption line in CSV/JSONL/TXT, for inputs without a row count

EXTRAS = {"ray": ("ray", "ray"), "spark": ("pyspark", "spark")}  # executor -> (module, extra)


def check_extra(cfg: BuildConfig) -> Check:
    """The chosen executor's optional dependencies are importable by this interpreter.

    Args:
        cfg: the resolved build config.
    """
    name = cfg.executor.name
    if name not in EXTRAS:
        return ok("executor extra", "executor.name", f"{name}: no extra needed")
    module, extra = EXTRAS[name]
    if importlib.util.find_spec(module) is None:
        return fail("executor extra", "executor.name",
                    f"executor.name={name}: {module} is not installed in {sys.executable}; run: "
                    f"{sys.executable} -m pip install 'regionset[{extra}]'")
    return ok("executor extra", "executor.name", f"{module} installed")


def _existing_parent(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output(cfg: BuildConfig) -> Check:
    """``output`` is a folder this process can create files in (tried, not guessed: root ignores modes).

    Args:
        cfg: the resolved build config.
    """
    out = Path(cfg.output).expanduser()
    base = _existing_parent(out)
    if not base.is_dir():
        return fail("output writable", "output",
                    f"output={cfg.output}: {base} is a file, not a folder; choose another output folder")
    try:
        with tempfile.NamedTemporaryFile(dir=base, prefix=".regionset-preflight-"):
            pass
    except OSError as e:
        return fail("output writable", "output",
                    f"output={cfg.output}: cannot write in {base} ({e.strerror or e}); "
                    "choose a writable folder or fix its permissions")
    return ok("output writable", "output", f"{out} ({'exists' if out.exists() else 'will be created'})")


def estimate_urls(cfg: BuildConfig) -> int | None:
    """A rough count of input URLs (Parquet row counts, else file size / a typical row), or None.

    Args:
        cfg: the resolved build config (``input.path``).
    """
    p = Path(cfg.input.path).expanduser()
    if not cfg.input.path or not p.exists():
        return None  # the input reader names the key when the build shards it
    files = sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p]
    n = 0
    for f in files:
        if f.suffix == ".parquet":
            try:
                n += pq.ParquetFile(f).metadata.num_rows
                continue
            except Exception:  # not our error to report: the input reader names the file
                pass
        n += f.stat().st_size // AVG_URL_ROW_BYTES + 1
    return n


def estimate_bytes(cfg: BuildConfig, urls: int) -> int:
    """Rough bytes a build of ``urls`` URLs writes (images dominate).

    Args:
        cfg: the resolved build config (``download.image_size``).
        urls: the number of input URLs.
    """
    side = cfg.download.image_size
    return int(urls * side * side * 3 * JPEG_RATIO * IMAGE_COPIES)


def check_disk(cfg: BuildConfig) -> Check:
    """Free space where ``output`` lives against a rough estimate from the input size.

    Args:
        cfg: the resolved build config.
    """
    urls = estimate_urls(cfg)
    base = _existing_parent(Path(cfg.output).expanduser())
    if urls is None or not base.is_dir():
        return ok("free disk", "output", "no input to estimate from")
    need = estimate_bytes(cfg, urls)
    free = shutil.disk_usage(base).free
    detail = f"~{need / 1e9:.2f} GB needed for ~{urls} URLs, {free / 1e9:.1f} GB free in {base}"
    if free < need:
        return fail("free disk", "output", f"output={cfg.output}: {detail}; free space or choose "
                    "another output folder (or lower download.image_size)")
    if free < 2 * need:
        return warn("free disk", "output", detail)
    return ok("free disk", "output", detail)


def iter_checks(cfg: BuildConfig) -> Iterator[Check]:
    """Every preflight check of ``cfg``, lazily and in order (cheap local ones first, the network last).

    Args:
        cfg: the resolved build config.
    """
    extra = check_extra(cfg)
    yield extra
    if is_remote(cfg.output):  # an object store: a probe object, not a folder and free disk
        yield from storage_checks(cfg)
    else:
        yield check_output(cfg)
        yield check_disk(cfg)
    yield from model_checks(cfg)
    yield from gpu_checks(cfg)
    if extra.status != "fail":
        yield from executor_checks(cfg)


def run_preflight(cfg: BuildConfig) -> list[Check]:
    """Run the checks of ``cfg``; raise ``PreflightError`` at the first failure.

    Args:
        cfg: the resolved build config.
    """
    checks = []
    for check in iter_checks(cfg):
        if check.status == "fail":
            raise PreflightError(check)
        checks.append(check)
    return checks
