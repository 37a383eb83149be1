"""The fused ``regions`` step writes the tables and markers detect, ocr and embed write separately,
and a kill -9 in the middle of a fused shard resumes to the same tables."""

from __future__ import annotations

import signal
from pathlib import Path

from regionset.pipelines.build import build
from regionset.pipelines.config import load_config
from regionset.pipelines.tools.demo.corpus import demo_images
from tests.conftest import make_jpeg
from tests.helpers import table_hash, write_urls
from tests.pipelines.snapshots import markers
from tests.reliability.test_kill_resume import _build, _config, _hashes

PARTS = ("detect", "ocr", "embed")
FOLDERS = ("regions/object", "regions/text", "embeddings")


def _corpus(server, tmp_path: Path) -> Path:
    """Photos, two text pages, a blank image, a 404 and a corrupt file: 3 shards of 3."""
    samples = [im for im in demo_images() if im.name in ("astronaut.jpg", "coffee.jpg", "text-0.png", "text-1.png")]
    urls = [server.add(im.name, im.data) for im in samples]
    urls += [server.url("status/404"), server.add("blank.jpg", make_jpeg(400, 400)),
             server.add("bad.jpg", b"\xff\xd8 not really a jpeg"), server.add("small.jpg", make_jpeg(200, 120))]
    return write_urls(tmp_path, urls)


def _run(out: Path, urls: Path, steps: list[str], extra: list[str] = ()) -> list:
    cfg = load_config(None, [f"output={out}", f"input.path={urls}", "input.shard_size=3", "progress=false",
                             "download.allow_loopback=true", "download.timeout=5", f"steps=[{','.join(steps)}]",
                             "executor.processes=1", *extra])
    return build(cfg).reports


def _parts(out: Path) -> tuple[dict, dict]:
    tables = {f: table_hash(out, f) for f in FOLDERS}
    marks = {k: v for k, v in markers(out).items() if k.split("/")[0] in PARTS}
    return tables, marks


def test_fused_step_writes_the_separate_stages_tables_and_markers(server, tmp_path):
    urls = _corpus(server, tmp_path)
    _run(tmp_path / "separate", urls, ["download", "detect", "ocr", "embed"])
    fused = _run(tmp_path / "fused", urls, ["download", "regions"], ["ocr.batch_images=4"])
    assert [r.done for r in fused if r.stage == "regions"] == [3]
    want, got = _parts(tmp_path / "separate"), _parts(tmp_path / "fused")
    assert len(want[1]) == 9 and sum(m["rows_out"] for m in want[1].values()) > 0
    assert got == want  # table content hashes; markers: config and input hashes, rows, counters, sha256
    # each finds the other's shards complete
    again = _run(tmp_path / "fused", urls, ["download", "detect", "ocr", "embed"])
    assert all(r.done == 0 for r in again), again
    assert all(r.done == 0 for r in _run(tmp_path / "separate", urls, ["download", "regions"]))


def test_kill_mid_fused_shard_resumes_to_the_separate_stages_tables(server, tmp_path):
    urls = _corpus(server, tmp_path)
    ref = tmp_path / "reference"
    ref_cfg = _config(tmp_path, ref, urls)
    ref_cfg.write_text(ref_cfg.read_text() + "steps: [download, detect, ocr, embed]\n")
    assert _build(ref_cfg).returncode == 0
    expected = _hashes(ref)
    for point in ("shard_written:detect",):  # detect's attempt object written, its marker, ocr and embed not yet
        out = tmp_path / f"fused-{point.replace(':', '-')}"
        cfg = _config(tmp_path, out, urls)
        cfg.write_text(cfg.read_text() + "steps: [download, regions]\n")
        r = _build(cfg, failpoint=point)
        assert r.returncode == -signal.SIGKILL, f"{point}: did not die ({r.returncode}): {r.stderr[-1000:]}"
        assert (out / "_state/_attempts/regions/object").is_dir() and not (out / "regions/text").exists()
        again = _build(cfg)
        assert again.returncode == 0, again.stderr[-2000:]
        assert _hashes(out) == expected, point
