"""``kmeans.fit: auto``: the in-driver or the per-parent fit, chosen from the config and the data.

``auto`` (the default) runs ``local`` when the whole sample, ``min(sample_size, rows available)`` ×
d float32, is at most ``kmeans.local_max_mib``, and ``per_parent`` above. Rows and d come from the
Parquet footers of ``embeddings/`` (its width) and ``regions/<source>/`` (per shard, the smaller of
the two row counts: an upper bound of the rows the sample draws from, exact unless regions were left
unembedded), read shard by shard until ``sample_size`` rows are counted. Never from this machine's
RAM: two machines build the same tree. The rule only decides a *new* fit: a frozen tree fitted by
either fit is reused under ``auto`` (``reusable``), so a growing URL list never flips it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from regionset.common.storage import RemotePath, arrow_source
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.shards import shard_path
from regionset.pipelines.kmeans.config import FITS, KMeansConfig
from regionset.schemas import EMBEDDINGS
from regionset.schemas.tables import REGIONS

MIB = 1 << 20
# An explicit ``fit: local`` warns from this many times ``local_max_mib`` on: the driver's peak is
# several times the sample (about 4.5× measured, docs/capacity.md "Memory").
LOCAL_WARN_FACTOR = 4


@dataclass(frozen=True)
class FitChoice:
    """The fit that runs, and why.

    Args:
        requested: ``kmeans.fit`` as configured (``auto``, ``local`` or ``per_parent``).
        fit: the fit that runs (``local`` or ``per_parent``).
        sample_rows: ``min(sample_size, rows available)`` (footers: an upper bound).
        dim: the embedding width (0 when there are no embeddings).
        local_max_mib: ``kmeans.local_max_mib``.
    """

    requested: str
    fit: str
    sample_rows: int
    dim: int
    local_max_mib: float

    @property
    def sample_mib(self) -> float:
        """The whole sample's float32 size in MiB."""
        return self.sample_rows * self.dim * 4 / MIB

    def record(self) -> dict[str, Any]:
        """What ``kmeans.json`` and the step summary keep: what was asked, what ran, and the rule's inputs."""
        rule = {"sample_rows": self.sample_rows, "dim": self.dim, "sample_mib": round(self.sample_mib, 3),
                "local_max_mib": self.local_max_mib}
        return {"fit_requested": self.requested, "fit": self.fit, "fit_rule": rule}


def choose_fit(kc: KMeansConfig, sample_rows: int, dim: int) -> str:
    """``local`` or ``per_parent``: ``kc.fit`` when explicit, else the ``auto`` rule.

    Args:
        kc: the k-means config.
        sample_rows: rows the sample will hold.
        dim: the embedding width.
    """
    kc.check()
    if kc.fit != "auto":
        return kc.fit
    return "local" if sample_rows * dim * 4 <= kc.local_max_mib * MIB else "per_parent"


def _footer(path: Path | RemotePath) -> pq.FileMetaData:
    src, fs = arrow_source(path)
    return pq.read_metadata(src, filesystem=fs)


def sample_shape(out: Output, shards: list[int], sources: tuple[str, ...], sample_size: int) -> tuple[int, int]:
    """(``min(sample_size, rows available)``, d) from Parquet footers only (no data page is read).

    Args:
        out: the output folder or object-store prefix.
        shards: the build's shard ids (missing embedding shards are skipped).
        sources: region sources sampled (``kmeans.sources``).
        sample_size: ``kmeans.sample_size``; counting stops once it is reached.
    """
    rows = dim = 0
    for shard in shards:
        if rows >= sample_size:
            break
        path = shard_path(out, EMBEDDINGS, shard)
        if not path.exists():
            continue
        emb = _footer(path)
        dim = dim or emb.schema.to_arrow_schema().field("embedding").type.list_size
        regions = [shard_path(out, f"{REGIONS}/{s}", shard) for s in sources]
        rows += min(emb.num_rows, sum(_footer(p).num_rows for p in regions if p.exists()))
    return min(rows, sample_size), dim


def resolve_fit(out: Output, kc: KMeansConfig, shards: list[int]) -> FitChoice:
    """The fit a new tree of ``kc`` gets on the embeddings of ``shards`` (footers only).

    Args:
        out: the output folder or object-store prefix.
        kc: the k-means config.
        shards: the build's shard ids.
    """
    rows, dim = sample_shape(out, shards, tuple(kc.sources), kc.sample_size)
    return FitChoice(kc.fit, choose_fit(kc, rows, dim), rows, dim, kc.local_max_mib)


def fit_signature(kc: KMeansConfig) -> dict[str, Any]:
    """The config fields that decide the tree, as JSON: all but ``refit``, ``device`` and
    ``local_max_mib``; ``kc.fit`` (``local`` or ``per_parent``) and ``kc.backend`` (``faiss`` or
    ``torch``) must be resolved."""
    d = dataclasses.asdict(kc)
    for k in ("refit", "device", "local_max_mib"):
        d.pop(k)
    if d.get("fit") == "local":  # trees fitted before the option existed stay frozen
        d.pop("fit")
    if d.get("backend") == "faiss":  # likewise trees fitted before ``backend`` existed
        d.pop("backend")
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def reusable(signature: Any, kc: KMeansConfig) -> bool:
    """Whether a tree of ``signature`` is the tree ``kc`` asks for: under ``fit: auto``, one fitted by
    either fit; under ``backend: auto``, one fitted by either backend.

    Args:
        signature: ``kmeans.json``'s ``signature`` (None when absent).
        kc: the k-means config (``fit`` and ``backend`` may be ``auto``).
    """
    fits = FITS if kc.fit == "auto" else (kc.fit,)
    backends = ("faiss", "torch") if kc.backend == "auto" else (kc.backend,)
    return any(signature == fit_signature(dataclasses.replace(kc, fit=f, backend=b))
               for f in fits for b in backends)


def local_warning(kc: KMeansConfig, dim: int) -> str | None:
    """The warning for an explicit ``fit: local`` whose ``sample_size`` × d float32 is over
    ``LOCAL_WARN_FACTOR`` × ``local_max_mib``, else None.

    Args:
        kc: the k-means config.
        dim: the embedding width.
    """
    mib = kc.sample_size * dim * 4 / MIB
    if kc.fit != "local" or mib <= LOCAL_WARN_FACTOR * kc.local_max_mib:
        return None
    return (f"kmeans.fit=local holds up to kmeans.sample_size={kc.sample_size:,} × d={dim} float32 = "
            f"{mib / 1024:,.1f} GiB in the driver (its peak is several times that; > {LOCAL_WARN_FACTOR}× "
            f"kmeans.local_max_mib={kc.local_max_mib:g}): use kmeans.fit=per_parent (or auto), "
            "unless the data holds far fewer regions")


def describe(meta: dict[str, Any]) -> str:
    """One line for ``regionset status``: the tree's sizes, the fit that ran and, under ``auto``, why.

    Args:
        meta: ``kmeans.json``.
    """
    fit = meta.get("fit", "local")
    why = ""
    rule = meta.get("fit_rule")
    if meta.get("fit_requested") == "auto" and rule:
        mib = rule["sample_mib"]
        size = f"{mib:,.1f}" if mib >= 10 else f"{mib:.3g}"
        why = (f" (auto: sample {rule['sample_rows']:,} × {rule['dim']} float32 = {size} MiB "
               f"{'≤' if fit == 'local' else '>'} kmeans.local_max_mib {rule['local_max_mib']:g})")
    return (f"k-means tree: {meta['sizes'][-1]:,} leaves (sizes {meta['sizes']}), fit {fit}{why}, "
            f"sample {meta.get('sample_rows', 0):,} rows")
