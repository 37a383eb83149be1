"""SIGKILL a real `regionset build` at several points, re-run it: the tables equal an uninterrupted
build's (content hashes), with no missing or duplicate rows and no temp files left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from regionset.pipelines.config import load_config
from regionset.pipelines.definition import GlobalStep, build_steps
from regionset.pipelines.tools.demo.corpus import demo_images
from tests.conftest import make_jpeg
from tests.helpers import table_hash, write_urls

TABLES = ["images", "regions/object", "regions/text", "embeddings", "labels", "train"]


def _config(tmp: Path, out: Path, urls: Path) -> Path:
    cfg = {"output": str(out), "input": {"path": str(urls), "shard_size": 3}, "progress": False,
           "download": {"allow_loopback": True, "timeout": 3}}
    path = tmp / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _build(config: Path, failpoint: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "REGIONSET_FAILPOINT": failpoint or ""}
    return subprocess.run([sys.executable, "-m", "regionset.pipelines.cli", "build", str(config)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def _kill_points(config: Path) -> list[str]:
    steps = build_steps(load_config(config))
    points = []
    for step in steps:
        if isinstance(step, GlobalStep):
            points.append(f"global:{step.name}")
            if step.name == "fit_kmeans":
                points.append("kmeans:fitted")
        else:
            points += [f"mid_shard:{step.name}", f"shard_written:{step.name}", f"marker_committed:{step.name}"]
    return points + ["catalog"]


@pytest.fixture
def corpus(server, tmp_path):
    """Four real photos and a text page (so every stage has rows), a blank image and a 404."""
    samples = [im for im in demo_images() if im.name in ("astronaut.jpg", "chelsea.jpg", "coffee.jpg",
                                                           "rocket.jpg", "text-1.png")]
    urls = [server.add(im.name, im.data) for im in samples]
    urls.insert(2, server.url("status/404"))
    urls.append(server.add("blank.jpg", make_jpeg(400, 400)))
    return write_urls(tmp_path, urls)


def _hashes(out: Path) -> dict[str, str]:
    return {t: table_hash(out, t) for t in TABLES if (out / t).exists()}


# The default run kills at one point of each kind; `-m slow` tries every point of every step.
QUICK_POINTS = ["shard_written:embed", "marker_committed:embed", "kmeans:fitted", "catalog"]


def test_kill_at_representative_points_then_resume(corpus, tmp_path):
    _kill_and_resume(corpus, tmp_path, QUICK_POINTS)


@pytest.mark.slow
def test_kill_at_every_point_then_resume(corpus, tmp_path):
    _kill_and_resume(corpus, tmp_path, None)


def _kill_and_resume(corpus: Path, tmp_path: Path, only: list[str] | None) -> None:
    ref_out = tmp_path / "reference"
    ref = _build(_config(tmp_path, ref_out, corpus))
    assert ref.returncode == 0, ref.stderr[-2000:]
    expected = _hashes(ref_out)
    n_urls = pq.read_table(corpus).num_rows
    points = only or _kill_points(_config(tmp_path, ref_out, corpus))
    killed = 0
    for point in points:
        out = tmp_path / f"run-{point.replace(':', '-')}"
        cfg = _config(tmp_path, out, corpus)
        r = _build(cfg, failpoint=point)
        assert r.returncode == -signal.SIGKILL, f"{point}: did not die ({r.returncode}): {r.stderr[-1000:]}"
        killed += 1
        again = _build(cfg)
        assert again.returncode == 0, f"{point}: resume failed: {again.stderr[-2000:]}"
        assert _hashes(out) == expected, f"{point}: tables differ after resume"
        keys = [k for f in sorted((out / "images").glob("part-*.parquet")) for k in pq.read_table(f)["key"].to_pylist()]
        assert len(keys) == len(set(keys)) == n_urls, point
        leftovers = [p for p in out.rglob("*") if p.name.endswith((".tmp", ".tmp.wal"))
                     or p.is_file() and "_attempts" in p.parts]  # no attempt object either
        assert not leftovers, f"{point}: temp files left: {leftovers}"
        assert not (out / "_state" / "build.lock").exists()
    print(f"\nkill points tried and recovered: {killed}: {points}")


def test_kill_during_download_asynchronously(server, tmp_path):
    """A kill from outside, at a moment the build does not choose (while a slow URL downloads)."""
    urls = [server.add(f"s{i}.jpg", make_jpeg(340, 340)) for i in range(6)]
    urls[4] = server.url("slow/4")
    path = write_urls(tmp_path, urls)
    out = tmp_path / "out"
    cfg = _config(tmp_path, out, path)
    data = yaml.safe_load(cfg.read_text())
    data.update(steps=["download"])
    data["download"].update(deadline=2)
    cfg.write_text(yaml.safe_dump(data))
    proc = subprocess.Popen([sys.executable, "-m", "regionset.pipelines.cli", "build", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not server.hits.get("/slow/4"):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _build(cfg).returncode == 0
    keys = [k for f in sorted((out / "images").glob("part-*.parquet")) for k in pq.read_table(f)["key"].to_pylist()]
    assert len(keys) == len(set(keys)) == len(urls)
