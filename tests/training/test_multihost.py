"""Training across hosts: torchrun on two "hosts" (separate launches with their own working dir,
HOME and TMPDIR, rendezvous on loopback), data and checkpoints on the S3 test server.

A rank killed after a checkpoint (``REGIONSET_TRAIN_FAILPOINT``), then both hosts restarted: every
rank resumes at the same step and the final weights are bit-identical to an uninterrupted two-host
run (deterministic CPU: gloo, one thread per rank, no DataLoader workers). Under
``torchrun --max-restarts 1`` the same happens without a manual restart (elastic restart).

The hosts are :class:`tests.training.hosts.LoopbackHosts`; the network-namespace hosts of the
cluster fixture can replace them (same ``spawn``/``env``/``address``) once merged.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from regionset.common.storage import as_path
from regionset.pipelines.core.shards import Marker, file_sha256, write_marker
from regionset.training.run_files import get_torch
from regionset.training.synthetic import write_synthetic_shards
from tests.s3server import s3  # noqa: F401 (fixture)
from tests.training.croc.conftest import write_caption_shards
from tests.training.hosts import LoopbackHosts, launch_nodes, wait_all

ROOT = Path(__file__).resolve().parents[2]
STEPS, SAVE_EVERY, KILL_AT = 6, 2, 3  # killed after step 3: the last committed checkpoint is step 2
TIMEOUT = 240


def upload_build(s3, prefix: str, paths: list[str]) -> str:  # noqa: F811
    """Shards on the store, each committed by its pack marker (the build's commit rule)."""
    root = as_path(s3.url(prefix))
    for i, p in enumerate(paths):
        (root / "train" / os.path.basename(p)).write_bytes(Path(p).read_bytes())
        write_marker(root, Marker(stage="pack", shard=i, config_hash="c", input_hash="i",
                                  output_sha256=file_sha256(Path(p)), rows_in=1, rows_out=1, seconds=0.0))
    return str(root)


def job(kind: str, data: str, out: str) -> tuple[str, list[str]]:
    common = [f"data.train_dir={data}", f"loop.out_dir={out}", f"loop.steps={STEPS}", "loop.log_every=2",
              f"loop.save_every={SAVE_EVERY}", "loop.warmup_steps=1", "data.num_workers=0", "device=cpu"]
    if kind == "rice":
        return "regionset.training.rice", [str(ROOT / "training/configs/rice-tiny.yaml"), *common,
                                           "data.batch_size=4", "model.image_size=32", "loss.num_tokens=32",
                                           "export=false"]
    return "regionset.training.croc", [str(ROOT / "training/configs/croc-tiny.yaml"), *common, "data.batch_size=4"]


@pytest.fixture(scope="module")
def builds(s3, tmp_path_factory):  # noqa: F811
    local = tmp_path_factory.mktemp("builds")
    return {"rice": upload_build(s3, "builds/rice", write_synthetic_shards(str(local / "rice"), 2, 8, size=32)),
            "croc": upload_build(s3, "builds/croc", write_caption_shards(str(local / "croc"), 2, 8))}


def run_ok(procs) -> list[str]:
    results = wait_all(procs, TIMEOUT)
    for rc, log in results:
        assert rc == 0, log[-3000:]
    return [log for _, log in results]


def weights(out: str, world: int) -> dict[str, torch.Tensor]:
    folder = as_path(f"{out}/checkpoints/step-{STEPS:08d}")
    names = ["model.pt"] + [n for r in range(world) for n in (f"shard-rank{r}.pt",) if (folder / n).exists()]
    return {f"{n}:{child}:{k}": v for n in names for child, state in get_torch(folder / n).items()
            for k, v in state.items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and a
    for k in a:
        assert torch.equal(a[k], b[k]), k


def resumed_at(logs: list[str]) -> set[str]:
    return {line.split("resumes at ", 1)[1].split(" from")[0] for log in logs for line in log.splitlines()
            if "resumes at step" in line}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["rice", "croc"])
def test_two_hosts_kill_one_rank_restart_both(kind, s3, builds, tmp_path):  # noqa: F811
    module, _ = job(kind, builds[kind], "")
    whole, parts = s3.url(f"runs/{kind}-2h-whole"), s3.url(f"runs/{kind}-2h-parts")
    run_ok(launch_nodes(LoopbackHosts(tmp_path / "a"), module, job(kind, builds[kind], whole)[1]))

    hosts = LoopbackHosts(tmp_path / "b")
    killed = wait_all(launch_nodes(hosts, module, job(kind, builds[kind], parts)[1],
                                   env={1: {"REGIONSET_TRAIN_FAILPOINT": f"{KILL_AT}"}}), TIMEOUT)
    assert all(rc != 0 for rc, _ in killed), [rc for rc, _ in killed]  # host 1 died, host 0's rank failed
    keys = set(s3.keys(f"runs/{kind}-2h-parts"))
    assert "checkpoints/step-00000002/complete.json" in keys and "checkpoints/step-00000004/meta.json" not in keys
    logs = run_ok(launch_nodes(hosts, module, job(kind, builds[kind], parts)[1]))  # restart both hosts
    assert resumed_at(logs) == {"step 2"} and sum(log.count("resumes at step") for log in logs) == 2
    assert_same(weights(whole, 2), weights(parts, 2))
    assert not any(p.name.startswith("s3:") for p in tmp_path.rglob("s3:*"))
    if kind == "croc":  # built once by rank 0 on the store, read by every rank
        assert "tokenizer.json" in set(s3.keys(f"runs/{kind}-2h-parts"))


@pytest.mark.slow
def test_elastic_restart_under_torchrun(s3, builds, tmp_path):  # noqa: F811
    module, _ = job("rice", builds["rice"], "")
    whole, elastic = s3.url("runs/rice-1h-whole"), s3.url("runs/rice-1h-elastic")
    hosts = LoopbackHosts(tmp_path, count=1)
    run_ok(launch_nodes(hosts, module, job("rice", builds["rice"], whole)[1], nproc=2))
    logs = run_ok(launch_nodes(hosts, module, job("rice", builds["rice"], elastic)[1], nproc=2, max_restarts=1,
                               env={0: {"REGIONSET_TRAIN_FAILPOINT": f"{KILL_AT}:1"}}))
    assert resumed_at(logs) == {"step 2"} and logs[0].count("resumes at step") == 2  # both ranks, same step
    assert_same(weights(whole, 2), weights(elastic, 2))
