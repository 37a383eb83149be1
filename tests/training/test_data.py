"""ShardStream: ranks × workers cover every image once per epoch, determinism, resume."""

from __future__ import annotations

import pytest
import torch

from regionset.training.data import ShardStream, StreamLoader
from regionset.training.rice.regions import RegionTransform, collate_regions
from regionset.training.synthetic import write_synthetic_shards

torch.set_num_threads(1)


def _keys(row, rng):
    return {"key": row["key"], "x": torch.tensor(rng.integers(1000))}


def _collate(samples):
    return {"key": [s["key"] for s in samples], "x": torch.stack([s["x"] for s in samples])}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    write_synthetic_shards(str(out), num_shards=3, rows_per_shard=10, size=32)
    return str(out)


def _loader(shards, rank=0, world=1, workers=2, epochs=1, batch=4, seed=0):
    stream = ShardStream(shards, _keys, _collate, batch, seed=seed, rank=rank, world_size=world, epochs=epochs,
                         columns=["key"])
    return StreamLoader(stream, num_workers=workers)


def test_two_ranks_two_workers_see_every_image_once(shards):
    seen = [k for rank in range(2) for b in _loader(shards, rank, 2, workers=2) for k in b["key"]]
    assert len(seen) == 30 and len(set(seen)) == 30
    two_epochs = [k for rank in range(2) for b in _loader(shards, rank, 2, epochs=2) for k in b["key"]]
    assert sorted(two_epochs) == sorted(seen * 2)


def test_deterministic_for_a_seed(shards):
    run = [b["key"] + b["x"].tolist() for b in _loader(shards, workers=2)]
    again = [b["key"] + b["x"].tolist() for b in _loader(shards, workers=2)]
    other = [b["key"] for b in _loader(shards, workers=2, seed=1)]
    assert run == again and [r[:len(o)] for r, o in zip(run, other)] != other


def test_resume_continues_where_it_stopped(shards):
    full = [b["key"] for b in _loader(shards, workers=2, epochs=2)]
    first = _loader(shards, workers=2, epochs=2)
    it = iter(first)
    consumed = [next(it)["key"] for _ in range(6)]  # workers have prefetched beyond this point
    state = first.state_dict()
    resumed = _loader(shards, workers=2, epochs=2)
    resumed.load_state_dict(state)
    rest = [b["key"] for b in resumed]
    assert consumed + rest == full  # an even count of batches keeps the worker round-robin phase
    with pytest.raises(ValueError, match="num_workers"):
        _loader(shards, workers=1).load_state_dict(state)


def test_more_readers_than_shards_split_shards(shards):
    seen = [k for rank in range(4) for b in _loader(shards, rank, 4, workers=2) for k in b["key"]]
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 30


def test_region_batches_from_the_pipeline_schema(shards):
    stream = ShardStream(shards, RegionTransform(32, 8, 5, 4, 3), collate_regions, 8, epochs=1)
    batch = next(iter(StreamLoader(stream, num_workers=0)))
    assert batch["image"].shape == (8, 3, 32, 32) and batch["token_mask"].shape == (8, 5, 16)
    assert batch["token_ids"].shape == (8, 5, 4) and batch["region_valid"].all()
    assert ((batch["class_ids"] >= 0) == ~batch["is_text"]).all()
