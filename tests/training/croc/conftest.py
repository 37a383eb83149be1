"""Fixtures for the Croc tests: tiny train shards whose captions describe the image."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from regionset.schemas.tables import SOURCE_OBJECT, TRAIN, train_schema
from regionset.training.synthetic import COLOURS, SHAPES, synthetic_row

COLOUR_NAMES = ("red", "green", "blue", "yellow")
assert len(COLOUR_NAMES) == len(COLOURS)


def describe(row: dict) -> str:
    """A caption naming the row's shapes (learnable from the pixels)."""
    names = []
    for r in row["regions"]:
        if r["source"] == SOURCE_OBJECT:
            shape, colour = divmod(r["class_id"], len(COLOURS))
            names.append(f"a {COLOUR_NAMES[colour]} {SHAPES[shape]}")
        else:
            names.append("some text")
    return " and ".join(names)


def write_caption_shards(out: str, num_shards: int = 2, rows: int = 16, size: int = 64, seed: int = 0) -> list[str]:
    """Write ``out/train/part-*.parquet`` in the train schema, captions from :func:`describe`."""
    folder = os.path.join(out, TRAIN)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for s in range(num_shards):
        rng = np.random.default_rng([seed, s])
        table_rows = []
        for i in range(rows):
            row = synthetic_row(f"{s:05d}{i:04d}", rng, size=size, max_regions=2, text_prob=0.2)
            row["caption"] = describe(row)
            table_rows.append(row)
        path = os.path.join(folder, f"part-{s:05d}.parquet")
        pq.write_table(pa.Table.from_pylist(table_rows, schema=train_schema()), path)
        paths.append(path)
    return paths


@pytest.fixture
def caption_out(tmp_path):
    """An output folder with two small caption train shards."""
    torch.set_num_threads(2)
    out = str(tmp_path / "out")
    write_caption_shards(out)
    return out


def tiny_config(out: str, run_dir: str, stage: str = "1.5", overrides: list[str] | None = None):
    """The croc-tiny config pointed at ``out`` and ``run_dir`` (no DataLoader workers), as a CrocConfig."""
    from regionset.common.typed_config import load_config

    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "training", "configs", "croc-tiny.yaml")
    items = [f"data.train_dir={out}", f"loop.out_dir={run_dir}", "data.num_workers=0", "device=cpu",
             f"method.stage='{stage}'"]
    if stage != "1.5":
        items += ["method.lr={}", "method.attention=null"]
    from regionset.training.croc.config import CrocConfig

    return load_config(CrocConfig, path, items + list(overrides or []))
