"""Two gloo ranks (forked, no torchrun): rank 0 decides, every rank gets the same answer.

- the shard view: rank 1 looks at another (empty) folder, yet reads rank 0's shards and rows;
- the resume decision: rank 1 looks at a run folder with no checkpoints, yet resumes where rank 0 does;
- a failure on rank 0 (no shards) is raised on every rank, so none waits in a collective.
The fast stand-in of the torchrun tests in ``test_multihost.py`` (slow).
"""

from __future__ import annotations

import json
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from regionset.training.data import shard_view
from regionset.training.distributed import Rank0Error
from regionset.training.loop import LoopConfig, resume_point
from regionset.training.synthetic import write_synthetic_shards


def _worker(rank: int, store: str, root: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    mine = os.path.join(root, "data" if rank == 0 else "empty")
    facts: dict = {}
    try:
        view = shard_view(mine)
        facts["shards"] = [os.path.basename(p) for p in view.paths]
        facts["rows"] = view.rows
        found, saved = resume_point(LoopConfig(out_dir=os.path.join(root, "run" if rank == 0 else "elsewhere")))
        facts["resume"] = [os.path.basename(found), saved["step"]]
        try:
            shard_view(os.path.join(root, "missing" if rank == 0 else "data"))
        except FileNotFoundError as err:
            facts["error"] = f"own: {err}"
        except Rank0Error as err:
            facts["error"] = f"rank0: {err}"
    finally:
        dist.destroy_process_group()
        with open(os.path.join(root, f"rank{rank}.json"), "w") as f:
            json.dump(facts, f)


def test_rank0_decides_for_every_rank(tmp_path):
    write_synthetic_shards(str(tmp_path / "data"), num_shards=3, rows_per_shard=4, size=32)
    (tmp_path / "empty").mkdir()
    step = tmp_path / "run" / "checkpoints" / "step-00000005"
    step.mkdir(parents=True)
    (step / "meta.json").write_text(json.dumps({"step": 5, "data": []}))
    (step / "complete.json").write_text("{}")
    mp.start_processes(_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True,
                       start_method="fork")
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for facts in ranks:
        assert facts["shards"] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
        assert facts["rows"] == [4, 4, 4] and facts["resume"] == ["step-00000005", 5]
    assert ranks[0]["error"].startswith("own: ") and "missing" in ranks[0]["error"]
    assert ranks[1]["error"].startswith("rank0: listing the train shards") and "missing" in ranks[1]["error"]
