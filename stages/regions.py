"""regions: the fused detect + ocr + embed step (opt-in: ``steps=[download, regions, fit_kmeans,
assign, pack]``), one read and one decode of each image instead of three.

The step runs the ``detect``, ``ocr`` and ``embed`` stages themselves, with their own config
sections, over the shard in chunks of ``CHUNK`` images: detect and ocr process the chunk, then the
chunk's crops stream into the embedder, which keeps one stream (and so the same batches) across the
whole shard. The three stages share one memo of decoded images per chunk (``Stage.decoded``), so
each image is decoded once and dropped when its chunk is done. The engine
(``pipelines/core/shard_run.py``) writes the three tables with the markers the separate stages would
write (same config and input hashes, counters and rows): a later separate run finds them complete,
and the fused step finds the separate stages' shards complete.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from regionset.schemas import DUPLICATES, EMBEDDINGS, IMAGES, REGIONS_OBJECT, REGIONS_TEXT
from regionset.stages.base import Resources, Stage, config_hash
from regionset.stages.detect import DetectConfig, DetectStage
from regionset.stages.embed import EmbedConfig, EmbedStage
from regionset.stages.ocr import OcrConfig, OcrStage

CHUNK = 64  # images per chunk: a multiple of the detectors' batch sizes, so batches are unchanged


def _placing(devices: list[str]) -> str:
    """Of the parts' devices, the one that places a worker of the whole step."""
    named = [d for d in devices if d not in ("", "cpu", "auto")]
    return named[0] if named else "auto" if "auto" in devices else "cpu" if "cpu" in devices else ""


@dataclass(frozen=True)
class RegionsConfig:
    """The three sections the fused step runs (not a config section of its own)."""

    detect: DetectConfig = field(default_factory=DetectConfig)
    ocr: OcrConfig = field(default_factory=OcrConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)


@dataclass
class PartResult:
    """What one part (detect, ocr or embed) made of a shard: its marker's contents."""

    stage: Stage
    rows_in: int
    table: pa.Table
    seconds: float
    counters: dict[str, int]
    timings: dict[str, int]


class RegionsStage(Stage):
    """detect, ocr and embed over one decode of each image; ``parts`` write their own tables."""

    name = "regions"
    inputs = (IMAGES,)
    optional_inputs = (DUPLICATES,)
    output = EMBEDDINGS
    table = EMBEDDINGS
    version = "1"

    def __init__(self, config: RegionsConfig | None = None) -> None:
        super().__init__(config or RegionsConfig())
        c = self.config
        self.parts: tuple[DetectStage, OcrStage, EmbedStage] = (DetectStage(c.detect), OcrStage(c.ocr), EmbedStage(c.embed))

    def resources(self) -> Resources:
        """The most any part asks for (one worker runs all three)."""
        rs = [p.resources() for p in self.parts]
        return Resources(cpus=max(r.cpus for r in rs), gpus=max(r.gpus for r in rs))

    def device(self) -> str:
        """The device that places the step's workers: a part's GPU device (``cuda``, ``cuda:1``,
        ``tensorrt``) first, else ``auto`` when a part has it, else ``cpu`` or nothing."""
        return _placing([p.device() for p in self.parts])

    def device_here(self) -> str:
        """``device`` from the parts' ``device_here``."""
        return _placing([p.device_here() for p in self.parts])

    def config_hash(self, out) -> str:
        return config_hash([p.config_hash(out) for p in self.parts], f"{self.name}:{self.version}")

    def output_schema(self) -> pa.Schema:
        return self.parts[2].output_schema()

    def lineage(self) -> dict[str, Any]:
        """Each part's lineage under its name; their warnings together."""
        got = {p.name: p.lineage() for p in self.parts}
        return {**got, "warnings": [w for v in got.values() for w in v.get("warnings", [])]}

    def setup(self) -> None:
        for p in self.parts:
            p.ensure_setup()

    def teardown(self) -> None:
        for p in self.parts:
            p.ensure_teardown()

    def run_parts(self, tables: dict[str, pa.Table]) -> list[PartResult]:
        """The three parts' outputs for one shard's raw input tables (``images``, ``duplicates``)."""
        self.ensure_setup()
        detect, ocr, embed = self.parts
        for p in self.parts:
            p.take_counters()
            p.take_timings()
        images = tables[IMAGES]
        made: dict[str, list[pa.Table]] = {REGIONS_OBJECT: [], REGIONS_TEXT: []}
        rows_in = {p.name: 0 for p in self.parts}
        seconds = {p.name: 0.0 for p in self.parts}
        memo: dict[str, Any] = {}

        def run(part: Stage, chunk_tables: dict[str, pa.Table]) -> pa.Table:
            start = time.perf_counter()
            part.ensure_setup()  # re-applies the part's thread budget
            table = part.prepare(chunk_tables)
            rows_in[part.name] += table.num_rows
            result = part.process(table)
            seconds[part.name] += time.perf_counter() - start
            return result

        def crops() -> Iterator[tuple[str, str, Any]]:
            for start in range(0, max(images.num_rows, 1), CHUNK):  # an empty shard: one empty chunk
                memo.clear()
                chunk = {**tables, IMAGES: images.slice(start, CHUNK)}
                made[REGIONS_OBJECT].append(run(detect, chunk))
                made[REGIONS_TEXT].append(run(ocr, chunk))
                prepared = embed.prepare({**chunk, REGIONS_OBJECT: made[REGIONS_OBJECT][-1],
                                          REGIONS_TEXT: made[REGIONS_TEXT][-1]})
                rows_in[embed.name] += prepared.num_rows
                yield from embed.crops(prepared)
            memo.clear()

        for p in self.parts:
            p.decoded = memo
        start = time.perf_counter()
        try:
            embedded = embed.encode(crops())
        finally:
            for p in self.parts:
                p.decoded = None
        seconds[embed.name] = time.perf_counter() - start - seconds[detect.name] - seconds[ocr.name]
        out = [(detect, pa.concat_tables(made[REGIONS_OBJECT])), (ocr, pa.concat_tables(made[REGIONS_TEXT])),
               (embed, embedded)]
        return [PartResult(p, rows_in[p.name], t, seconds[p.name], p.take_counters(), p.take_timings())
                for p, t in out]
