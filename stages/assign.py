"""assign: region embeddings + regions -> ``labels`` (cluster path and distance, OCR token ids).

Per shard, streaming: every region of a clustered source (``kmeans.json``'s ``sources``, object
regions by default) that has an embedding is routed to its nearest leaf of the frozen tree (exact,
or by a beam through the tree for large trees: ``search``, with a sampled exact check);
its ``cluster_path`` holds one id per level (the leaf's ancestors), ``cluster_id`` the global leaf id
(the training class) and ``distance`` the squared L2 distance to the leaf centroid (between
unit-norm vectors in spherical mode, i.e. 2 − 2·cos). Text regions get their M positive token ids.

The stage's fingerprint includes the centroids' hash: a refit changes it and so redoes every shard,
while an incremental build (same frozen tree, new shards) only labels the new shards.

It refuses to run (``TreeMismatch``, naming the tree's path and hashes) rather than commit regions
unlabelled: when the tree a worker loads is not the one the driver planned with (missing on that
host, or refitted since), and when there is no tree while a shard has object regions with embeddings.
An unreadable ``kmeans.json`` is retried, then raised (``read_meta``), never taken for "no tree".
"""

from __future__ import annotations

import dataclasses
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regionset.common.storage import RemotePath, as_path, local_absolute
from regionset.models.kmeans_index import ClusterTree, embedding_matrix, read_meta
from regionset.models.registry import gpu_usable
from regionset.models.tokenizer import TokenizerConfig, TokenLabeler
from regionset.schemas import EMBEDDINGS, LABELS, REGIONS_OBJECT, REGIONS_TEXT, labels_schema
from regionset.schemas.tables import KMEANS, SOURCE_OBJECT, SOURCE_TEXT
from regionset.stages.base import Resources, Stage, config_hash

_REGION_COLS = ["region_id", "key", "source", "text"]
BEAM_MIN_LEAVES = 16_384
"""``search: auto`` uses the beam from this many leaves on (BENCHMARKS.md, "Beam assignment")."""
CHECK_SCALE = 1_000_000
"""``beam_check:*_inertia`` counters hold summed squared distances × this (counters are integers)."""


@dataclass(frozen=True)
class AssignConfig:
    """How regions get their labels.

    Args:
        kmeans_dir: the fitted tree's folder; empty means ``OUT/kmeans`` (the pipeline fills it in).
        backend: nearest-centroid search: ``auto`` (faiss on its GPUs; torch on a GPU when torch is
            loaded or the tree was fitted by the torch backend on a GPU; else numpy), ``numpy``,
            ``torch`` (exact and beam, CUDA when torch sees it) or ``faiss``.
        search: ``exact`` (nearest of all leaves), ``beam`` (``regionset.models.kmeans_beam``: the ``beam``
            nearest nodes per level, then their children) or ``auto``: beam from
            ``BEAM_MIN_LEAVES`` leaves on (measured trade-off in BENCHMARKS.md), exact below.
        beam: nodes kept per level by the beam search.
        check_rows: rows of every shard also searched exactly when the beam is used, to record its
            agreement (``beam_check:*`` counters; ``regionset status`` shows % same leaf and the
            inertia ratio); 0 skips the check.
        tokenizer: the OCR token labeler (open_clip's bundled BPE by default).
    """

    kmeans_dir: str = ""
    backend: Literal["auto", "numpy", "torch", "faiss"] = "auto"
    search: Literal["auto", "exact", "beam"] = "auto"
    beam: int = 16
    check_rows: int = 256
    tokenizer: TokenizerConfig = TokenizerConfig()
    resources: Resources = Resources()


class TreeMismatch(RuntimeError):
    """assign refuses to run: its k-means tree is missing or is not the one the build planned with."""


def _embedding_of(table: pa.Table, ids: pa.ChunkedArray) -> pa.Array:
    """The ``embedding`` of each id (null where the embeddings table has none)."""
    emb = table.column("embedding").combine_chunks()
    idx = pc.index_in(ids, value_set=table.column("region_id").combine_chunks())
    return emb.take(idx)


class AssignStage(Stage):
    """Label regions with their cluster path (objects) and token ids (text)."""

    name = "assign"
    inputs = (EMBEDDINGS, REGIONS_OBJECT, REGIONS_TEXT)
    output = LABELS
    table = LABELS

    def __init__(self, config: AssignConfig = AssignConfig()) -> None:
        super().__init__(config)
        self.tree: ClusterTree | None = None
        self.backend: str = config.backend  # resolved for the loaded tree in ``setup``
        self.labeler: TokenLabeler | None = None
        self._cpu0: float | None = None
        self.planned_centroids = ""  # the centroids' hash the driver planned with (travels with the stage)

    def shipped_config(self) -> AssignConfig:
        """``tokenizer.hf_path`` made absolute here, on the driver (``kmeans_dir`` is, by the pipeline)."""
        tok = self.config.tokenizer
        return dataclasses.replace(self.config, tokenizer=dataclasses.replace(tok, hf_path=local_absolute(tok.hf_path)))

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.shipped_config(), "planned_centroids": self.planned_centroids}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"])
        self.planned_centroids = state.get("planned_centroids", "")

    def _kmeans_dir(self, out: Path | None = None) -> Path | RemotePath:
        if self.config.kmeans_dir:
            return as_path(self.config.kmeans_dir)  # a folder or an object-store prefix
        if out is None:
            raise ValueError("assign.kmeans_dir is empty: the pipeline sets it to OUT/kmeans")
        return as_path(out) / KMEANS

    def fingerprint(self, out: Path) -> str:
        meta = read_meta(self._kmeans_dir(out))
        return f"centroids={meta['centroids_sha256'] if meta else 'none'}"

    def config_hash(self, out: Path) -> str:
        # Planned on the driver: the centroids' hash is remembered and travels with the stage, so a
        # worker's refusal can name both hashes.
        meta = read_meta(self._kmeans_dir(out))
        self.planned_centroids = meta["centroids_sha256"] if meta else "none"
        return self._hash_with(self.planned_centroids)

    def _hash_with(self, centroids: str) -> str:
        # Where the tree lives is not part of the result (its hash is, through the fingerprint).
        cfg = dataclasses.replace(self.config, kmeans_dir="")
        return config_hash(cfg, f"{self.name}:{self.version}:centroids={centroids}")

    def _loaded_centroids(self) -> str:
        return self.tree.meta["centroids_sha256"] if self.tree is not None else "none"

    def _load_tree(self) -> None:
        root = self._kmeans_dir()
        self.tree = ClusterTree.load(root) if read_meta(root) is not None else None
        self.backend = self.search_backend()

    def setup(self) -> None:
        self._load_tree()
        # Built here, not on the first text region: reading its vocabulary (and, with ``name: hf``,
        # importing transformers) happens once per worker, outside the per-shard work.
        self.labeler = TokenLabeler(self.config.tokenizer)

    def verify_plan(self, planned_hash: str) -> None:
        """Raise ``TreeMismatch`` unless the loaded tree is the one ``planned_hash`` was made with."""
        if self._hash_with(self._loaded_centroids()) == planned_hash:
            return
        self._load_tree()  # a long-lived worker may hold an older tree (refitted since): read it again, once
        if self._hash_with(self._loaded_centroids()) == planned_hash:
            return
        root = self._kmeans_dir()
        found = self._loaded_centroids()
        found = "no tree (no kmeans.json)" if found == "none" else f"centroids {found[:12]}"
        planned = self.planned_centroids or "?"
        planned = "no tree" if planned == "none" else f"centroids {planned[:12]}"
        raise TreeMismatch(f"assign: the k-means tree at {root} is {found} on host {socket.gethostname()}, "
                           f"but the build planned {planned}: put the tree where every worker reads it "
                           f"(assign.kmeans_dir or output on shared storage) and rerun")

    def _labeler(self) -> TokenLabeler:
        if self.labeler is None:
            self.labeler = TokenLabeler(self.config.tokenizer)
        return self.labeler

    def prepare(self, tables: dict[str, pa.Table]) -> pa.Table:
        self._cpu0 = time.process_time()  # ``cpu_ms:stage``: prepare + process of this shard
        regions = pa.concat_tables([tables[REGIONS_OBJECT].select(_REGION_COLS),
                                    tables[REGIONS_TEXT].select(_REGION_COLS)])
        return regions.append_column("embedding", _embedding_of(tables[EMBEDDINGS], regions.column("region_id")))

    def _count(self, reason: str, n: int) -> None:
        if n:
            self.counters[reason] += n

    def search_backend(self) -> str:
        """``backend``, except that ``auto`` is ``torch`` for a tree the torch backend fitted on a GPU
        (``kmeans.json`` ``torch_device``) when torch sees a GPU here: no faiss GPU build needed."""
        meta = self.tree.meta if self.tree is not None else {}
        if self.config.backend != "auto" or meta.get("torch_device", "cpu") == "cpu":
            return self.config.backend
        return "torch" if gpu_usable() else "auto"

    def search_used(self) -> str:
        """``exact`` or ``beam``: what ``search`` resolves to for the loaded tree."""
        from regionset.models.kmeans_beam import covers_tree

        want = self.config.search
        if want == "auto" and self.tree is not None:
            want = "beam" if self.tree.num_leaves >= BEAM_MIN_LEAVES else "exact"
        sizes = [len(c) for c in self.tree.centroids] if self.tree else [1]
        return "beam" if want == "beam" and not covers_tree(sizes, self.config.beam) else "exact"

    def _search(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Paths and distances by the configured search; counts the search, the sampled check and
        the CPU time of each (``cpu_ms:search``, ``cpu_ms:check``: this process, all its threads)."""
        assert self.tree is not None
        used = self.search_used()
        t0 = time.process_time()
        paths, dist = self.tree.assign(x, self.backend, used, self.config.beam)
        self.counters[f"search:{used}"] += len(x)
        self.timings["cpu_ms:search"] += round(1000 * (time.process_time() - t0))
        if used == "beam" and self.config.check_rows > 0:
            t0 = time.process_time()
            pick = np.unique(np.linspace(0, len(x) - 1, min(self.config.check_rows, len(x))).astype(np.int64))
            exact, edist = self.tree.assign(x[pick], self.backend, "exact")
            self.timings["cpu_ms:check"] += round(1000 * (time.process_time() - t0))
            self.counters["beam_check:rows"] += len(pick)
            self.counters["beam_check:same_leaf"] += int((exact[:, -1] == paths[pick, -1]).sum())
            self.counters["beam_check:exact_inertia"] += round(float(edist.sum(dtype=np.float64)) * CHECK_SCALE)
            self.counters["beam_check:beam_inertia"] += round(float(dist[pick].sum(dtype=np.float64)) * CHECK_SCALE)
        return paths, dist

    def process(self, table: pa.Table) -> pa.Table:
        n = table.num_rows
        ids = table.column("region_id").to_pylist()
        source = table.column("source").to_numpy(zero_copy_only=False)
        if self.tree is None and ((source == SOURCE_OBJECT) & table.column("embedding").is_valid()
                                  .to_numpy(zero_copy_only=False)).any():
            raise TreeMismatch(f"assign: no k-means tree at {self._kmeans_dir()} (no kmeans.json) but the shard "
                               f"has object regions with embeddings: run the fit_kmeans step first")
        clustered = list(self.tree.meta["sources"]) if self.tree else []
        want = np.isin(source, clustered)
        has_emb = table.column("embedding").is_valid().to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(want & has_emb)
        depth = len(self.tree.centroids) if self.tree else 1
        paths = np.zeros((n, depth), np.int32)
        dist = np.zeros(n, np.float32)
        if len(rows):
            assert self.tree is not None
            x = embedding_matrix(table.column("embedding").take(pa.array(rows)))
            if x.shape[1] != self.tree.dim:
                raise ValueError(f"assign: embeddings have d={x.shape[1]} but the k-means tree has "
                                 f"d={self.tree.dim}; refit with kmeans.refit=true")
            paths[rows], dist[rows] = self._search(x)
        self._count("drop:no_embedding", int((want & ~has_emb).sum()))
        self._count("labelled:cluster", len(rows))
        tokens: list[list[int] | None] = [None] * n
        texts = table.column("text").to_pylist()
        for r in np.flatnonzero(source == SOURCE_TEXT):
            tokens[r] = self._labeler().labels(texts[r], ids[r])
            self.counters["drop:empty_text" if tokens[r] is None else "labelled:tokens"] += 1
        has_cluster = np.zeros(n, bool)
        has_cluster[rows] = True
        has_tokens = np.array([t is not None for t in tokens], bool)
        keep = np.flatnonzero(has_cluster | has_tokens)
        self._count("drop:unlabelled", n - len(keep))
        mask = pa.array(~has_cluster[keep])
        offsets = pa.array(np.arange(len(keep) + 1, dtype=np.int32) * depth)
        cols = {
            "region_id": table.column("region_id").take(pa.array(keep)),
            "key": table.column("key").take(pa.array(keep)),
            "source": table.column("source").take(pa.array(keep)),
            "cluster_path": pa.ListArray.from_arrays(offsets, pa.array(paths[keep].ravel()), mask=mask),
            "cluster_id": pa.array(paths[keep, -1], mask=~has_cluster[keep]),
            "distance": pa.array(dist[keep], mask=~has_cluster[keep]),
            "token_ids": pa.array([tokens[r] for r in keep], pa.list_(pa.int32())),
        }
        schema = labels_schema()
        result = pa.table([cols[f.name].cast(f.type) for f in schema], schema=schema)
        if self._cpu0 is not None:
            self.timings["cpu_ms:stage"] += round(1000 * (time.process_time() - self._cpu0))
            self._cpu0 = None
        return result
