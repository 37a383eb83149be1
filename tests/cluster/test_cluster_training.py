"""Training across two hosts of the test cluster: ``torchrun --nnodes 2 --nproc-per-node 1`` on the
worker hosts ``w1`` and ``w2`` (rendezvous at ``w1``'s test-subnet address, gloo over the bridge),
data and ``loop.out_dir=s3://...`` on the store host's S3 server.

One host dies after a checkpoint: its rank stops right after step 3 (``REGIONSET_TRAIN_FAILPOINT``
with ``..._SIGNAL=STOP``, so the step-4 checkpoint cannot happen), then every process of that host
is killed at once (its PID namespace). Both hosts are then booted again, empty, and relaunched:
every rank resumes at step 2 and the final weights are bit-identical to an uninterrupted two-host
run on the same hosts (assertions shared with ``tests/training/test_multihost.py``). The hosts
need no own hostname: each torchrun publishes its host's address (``--local-addr``) and ``w1``
serves the rendezvous store (``--rdzv-conf is_host=1``), see ``tests/training/hosts.NetnsHosts``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cluster.hosts import tail
from tests.s3server import BUCKET
from tests.training.hosts import NetnsHosts, launch_nodes, wait_all
from tests.training.test_multihost import (
    KILL_AT,
    TIMEOUT,
    assert_same,
    job,
    resumed_at,
    upload_build,
    weights,
)

pytestmark = [pytest.mark.cluster]

STOPPED_SECONDS = 120  # the step-2 checkpoint must be committed by then


def _keys(cluster, prefix: str) -> set[str]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=cluster.endpoint)
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{prefix}/"):
        keys |= {k["Key"].removeprefix(f"{prefix}/") for k in page.get("Contents", [])}
    return keys


def _run_ok(procs) -> list[str]:
    results = wait_all(procs, TIMEOUT)
    for rc, log in results:
        assert rc == 0, log[-3000:]
    return [log for _, log in results]


def _shards(kind: str, folder: Path) -> list[str]:
    if kind == "rice":
        from regionset.training.synthetic import write_synthetic_shards

        return write_synthetic_shards(str(folder), 2, 8, size=32)
    from tests.training.croc.conftest import write_caption_shards

    return write_caption_shards(str(folder), 2, 8)


# RICE runs by default (~65 s alone); Croc is `slow` too (~80 s, and both together add ~2.5 min to the
# default run; its resume is also covered on loopback by tests/training/test_multihost.py)
@pytest.mark.parametrize("kind", ["rice", pytest.param("croc", marks=pytest.mark.slow)])
def test_two_cluster_hosts_one_dies_after_checkpoint(kind, cluster, tmp_path):
    cluster.reset()  # w1, w2 empty, no engine on them
    data = upload_build(cluster, f"train/{kind}", _shards(kind, tmp_path / "shards"))
    module, _ = job(kind, data, "")
    whole, parts = cluster.url(f"runs/{kind}-2h-whole"), cluster.url(f"runs/{kind}-2h-parts")
    hosts = NetnsHosts(cluster.workers(), cluster.logs / f"train-{kind}", cluster.env)
    try:
        _run_ok(launch_nodes(hosts, module, job(kind, data, whole)[1]))

        procs = launch_nodes(hosts, module, job(kind, data, parts)[1],
                             env={1: {"REGIONSET_TRAIN_FAILPOINT": f"{KILL_AT}",
                                      "REGIONSET_TRAIN_FAILPOINT_SIGNAL": "STOP"}})
        t0 = time.monotonic()
        while "checkpoints/step-00000002/complete.json" not in _keys(cluster, f"runs/{kind}-2h-parts"):
            assert all(p.poll() is None for p in procs), [tail(Path(p.log.name)) for p in procs]
            assert time.monotonic() - t0 < STOPPED_SECONDS, "no step-2 checkpoint"
            time.sleep(0.5)
        time.sleep(2)  # w2's rank is stopped after step 3; w1's rank waits for it at step 4
        cluster.workers()[1].kill()  # the host dies: every process on it at once
        killed = wait_all(procs, TIMEOUT)
        assert all(rc != 0 for rc, _ in killed), [(rc, log[-1500:]) for rc, log in killed]
        keys = _keys(cluster, f"runs/{kind}-2h-parts")
        assert "checkpoints/step-00000004/meta.json" not in keys, sorted(keys)

        for host in cluster.workers():  # both hosts boot again, empty, and the job is relaunched
            host.restart()
        logs = _run_ok(launch_nodes(hosts, module, job(kind, data, parts)[1]))
        assert resumed_at(logs) == {"step 2"} and sum(log.count("resumes at step") for log in logs) == 2, logs
        assert_same(weights(whole, 2), weights(parts, 2))
        if kind == "croc":  # built once by rank 0 on the store, read by every rank
            assert "tokenizer.json" in _keys(cluster, f"runs/{kind}-2h-parts")
    finally:
        for host in cluster.workers():  # nothing of this test left running on the workers
            host.restart()
