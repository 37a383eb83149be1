"""The stage contract, shared by every stage and understood by every executor (docs/architecture.md).

A stage maps one shard's Arrow table to an Arrow table and knows nothing of executors. It is built
from a frozen, picklable config dataclass (so executors can ship it to workers cheaply); models are
loaded in ``setup()``, once per worker, and released in ``teardown()``. Per-row problems are never
exceptions: they become ledger values or drops counted by reason in ``counters``.

What a stage may override, besides ``process``: ``prepare`` (several inputs), ``setup`` /
``teardown``, ``fingerprint`` (state outside the config that must redo shards), ``lineage`` (model
ids and warnings for ``regionset.yaml``), ``row_group_rows`` (Parquet row-group size of the output).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from regionset.common import threads
from regionset.common.typed_config import ConfigError, flat_dict


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage needs; executors map this onto actors, tasks or pools.

    Args:
        cpus: threads one worker of the stage may use, on every pool (torch, onnxruntime, OpenCV,
            BLAS/OpenMP, FAISS, decode threads), capped by the worker's share of cores; 0 = the whole
            share (``common/threads.py``, docs/cluster.md). Ray actors ask for this many CPUs (1 when 0).
        gpus: GPUs per worker: a whole number, or 1/N (0.5, 0.25, ...) for N workers sharing one GPU
            (Ray actor ``num_gpus``, Spark task GPU amount, ``local`` workers per visible GPU;
            docs/cluster.md "Several workers per GPU").
    """

    cpus: float = 0.0
    gpus: float = 0.0

    def check(self, key: str = "resources") -> None:
        """Raise ConfigError naming ``key`` for a hint no executor can place.

        Args:
            key: the dotted config key of this section (``embed.resources``).
        """
        if self.cpus < 0:
            raise ConfigError(f"{key}.cpus={self.cpus:g}: must be >= 0 (0 = the worker's whole share)")
        g = self.gpus
        if g < 0:
            raise ConfigError(f"{key}.gpus={g:g}: must be >= 0: a whole number or 1/N")
        whole = abs(g - round(g)) < 1e-6
        share = 0 < g < 1 and abs(1 / g - round(1 / g)) < 1e-6 * (1 / g)
        if g and not (whole or share):
            raise ConfigError(f"{key}.gpus={g:g}: must be a whole number or 1/N (0.5, 0.25, ...), "
                              f"the share of one GPU each of N workers on it takes")

    def workers_per_gpu(self) -> int:
        """Workers that share one GPU: N for ``gpus`` = 1/N, else 1."""
        return max(1, round(1 / self.gpus)) if 0 < self.gpus < 1 else 1


def config_hash(config: Any, extra: str = "") -> str:
    """A short, stable hash of a config dataclass (plus ``extra``) for completion markers."""
    # flat_dict: the layout before config keys moved into sub-sections (common/typed_config.py),
    # so that a renamed key does not redo every finished shard.
    payload = json.dumps(flat_dict(config), sort_keys=True, default=str) + extra
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class Stage:
    """Base class of every stage.

    Subclasses set ``name``, ``inputs`` (shard folders read, in order), ``output`` (shard folder
    written) and ``table`` (schema name of the output), and implement ``process``.
    """

    name: ClassVar[str] = ""
    inputs: ClassVar[tuple[str, ...]] = ()
    optional_inputs: ClassVar[tuple[str, ...]] = ()  # shard folders read (and hashed) when present
    output: ClassVar[str] = ""
    table: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    # Rows per Parquet row group of the output; None: the executors' default (pipelines/core/shards.py).
    row_group_rows: int | None = None
    # Images already decoded, by key, shared with the other stages of the fused ``regions`` step
    # (stages/regions.py; ``region_helpers.iter_images``); None: every stage decodes for itself.
    decoded: dict[str, Any] | None = None

    def __init__(self, config: Any) -> None:
        self.config = config
        self.counters: Counter[str] = Counter()
        self.timings: Counter[str] = Counter()  # CPU milliseconds by part (``Marker.timings``)
        self._ready = False

    # -- what executors call -------------------------------------------------------------------
    def resources(self) -> Resources:
        """The per-worker resource hint from ``config.resources``; a config whose ``device`` names
        CUDA explicitly asks executors for one GPU per worker when the hint gives none."""
        r = getattr(self.config, "resources", None) or Resources()
        if self.device().startswith("cuda") and r.gpus == 0:
            return Resources(cpus=r.cpus, gpus=1.0)
        return r

    def device(self) -> str:
        """The device the config names (its ``device`` key; empty when none), for ``resources``."""
        return str(getattr(self.config, "device", "") or "")

    def device_here(self) -> str:
        """``device()`` as this machine would resolve it where the stage knows better than ``auto``
        (e.g. OCR without onnxruntime's CUDA provider runs on the CPU); the ``local`` executor places
        workers on GPUs by it (``pipelines/executors/gpus.py``)."""
        return self.device()

    def setup(self) -> None:
        """Load models; called once per worker before the first ``process``."""

    def ensure_setup(self) -> None:
        """Run ``setup()`` once, under the stage's thread budget (applied before the models load and
        again after, for the libraries they loaded); later calls re-apply the budget if another stage
        of this worker changed it in between."""
        budget = threads.stage_threads(self.resources().cpus)
        if not self._ready:
            threads.apply(budget)
            self.setup()
            threads.apply(budget)
            self._ready = True
        elif threads.current() != budget:
            threads.apply(budget)

    def teardown(self) -> None:
        """Release what ``setup()`` holds (worker processes, sessions); the next use sets up again."""

    def ensure_teardown(self) -> None:
        """Run ``teardown()`` if ``setup()`` ran; executors call it when a worker is done with the stage."""
        if self._ready:
            self._ready = False
            self.teardown()

    def lineage(self) -> dict[str, Any]:
        """Model ids and versions for ``regionset.yaml``; a ``warnings`` list is printed loudly."""
        return {}

    def prepare(self, tables: dict[str, pa.Table]) -> pa.Table:
        """Combine the shard's input tables (one per entry of ``inputs``) into ``process``'s input."""
        if len(self.inputs) != 1:
            raise NotImplementedError(f"stage {self.name} reads {list(tables)} and must define prepare()")
        return tables[self.inputs[0]]

    def process(self, table: pa.Table) -> pa.Table:
        """Map an input table to an output table with ``output_schema()``."""
        raise NotImplementedError

    def output_schema(self) -> pa.Schema:
        """Schema of the output table (defaults to the table's schema in ``schemas``)."""
        from regionset.schemas import schema_for

        return schema_for(self.table)

    def fingerprint(self, out: Path) -> str:
        """Extra state (besides config and inputs) whose change must redo finished shards."""
        return ""

    def config_hash(self, out: Path) -> str:
        """Hash of everything that decides this stage's output for a given input."""
        return config_hash(self.config, f"{self.name}:{self.version}:{self.fingerprint(out)}")

    def verify_plan(self, planned_hash: str) -> None:
        """Raise if what ``setup()`` loaded is not what the driver planned with (``planned_hash``, the
        driver's ``config_hash``); called by ``run_shard`` after setup, before any work. A stage whose
        fingerprint reads state outside its config (a file another host may not see) checks it here."""

    def take_counters(self) -> dict[str, int]:
        """Return and reset the counters collected since the last call."""
        counts = dict(self.counters)
        self.counters.clear()
        return counts

    def take_timings(self) -> dict[str, int]:
        """Return and reset the CPU milliseconds measured since the last call."""
        got = dict(self.timings)
        self.timings.clear()
        return got

    def shipped_config(self) -> Any:
        """The config as it travels to workers (``__getstate__``); by default as is. A stage whose
        config names local files returns them made absolute (resolved here, on the driver), so no
        worker resolves them against its own working folder or search path. Config hashes are the
        driver's, from the config as written, so they do not change."""
        return self.config

    def __getstate__(self) -> dict[str, Any]:
        # Models never travel: a stage is pickled as its config and rebuilt in the worker.
        return {"config": self.shipped_config()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"])
