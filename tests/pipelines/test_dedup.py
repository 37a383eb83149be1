"""Image dedup end to end on loopback: planted exact and near duplicates, look-alikes, eval images,
incremental regrouping, and a bad ``dedup.against`` path."""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.helpers import download_only, write_urls
from tests.synth import synthetic_scene

STEPS = "steps=[download,dedup,group_duplicates]"
N_BASE, N_LOOK = 16, 4


def _jpeg(im, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _corpus(server):
    """(urls, group of each url, kind of each url, eval images): 16 scenes x 6 copies + look-alikes."""
    from PIL import Image, ImageOps

    urls, groups, kinds, evals = [], [], [], []

    def add(name: str, body: bytes, group: int, kind: str) -> None:
        urls.append(server.add(name, body))
        groups.append(group)
        kinds.append(kind)

    rng = np.random.default_rng(0)
    for s in range(N_BASE + N_LOOK):
        im = Image.fromarray(synthetic_scene(s, size=(300, 400))[0])
        w, h = im.size
        original = _jpeg(im)
        add(f"s{s}.jpg", original, s, "original")
        if s >= N_BASE:  # a different shot of the same kind of scene: must stay apart from s
            add(f"look{s}.jpg", _jpeg(Image.fromarray(synthetic_scene(s + 1000, size=(300, 400))[0])), 1000 + s, "original")
            continue
        copies = {
            "exact": original,
            "q50": _jpeg(im, 50),
            "resized": _jpeg(im.resize((w * 6 // 10, h * 6 // 10))),
            "cropped": _jpeg(im.crop((w // 50, h // 50, w - w // 50, h - h // 50))),
            "border": _jpeg(ImageOps.expand(im, border=16, fill=(255, 255, 255))),
        }
        for kind, body in copies.items():
            add(f"s{s}-{kind}.jpg", body, s, kind)
        if s < 3:
            evals.append(_jpeg(im, 70))
    order = rng.permutation(len(urls))  # duplicates arrive before and after their originals
    return [urls[i] for i in order], [groups[i] for i in order], [kinds[i] for i in order], evals


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from regionset.pipelines.build import build
    from regionset.pipelines.tools.demo.server import LoopbackServer

    tmp = tmp_path_factory.mktemp("dedup")
    with LoopbackServer() as server:
        urls, groups, kinds, evals = _corpus(server)
        eval_dir = tmp / "eval"
        eval_dir.mkdir()
        for i, body in enumerate(evals):
            (eval_dir / f"eval{i}.jpg").write_bytes(body)
        (eval_dir / "unrelated.jpg").write_bytes(_jpeg(__import__("PIL.Image").Image.new("RGB", (64, 64), (9, 99, 9))))
        out = tmp / "out"
        result = build(download_only(out, write_urls(tmp / "in", urls), shard_size=40,
                                     extra=["steps=[download,dedup,group_duplicates,detect]",
                                            f"dedup.against=[{eval_dir}]"]))
    keys = pq.read_table(out / "input").column("key").to_pylist()
    truth = {k: (g, kind) for k, g, kind in zip(keys, groups, kinds)}
    rows = pq.read_table(out / "duplicates").to_pylist()
    return out, truth, rows, {r.stage: r for r in result.reports}


def _precision_recall(truth: dict, rows: list[dict]) -> tuple[float, float]:
    flagged = {r["key"]: r for r in rows if r["kind"] in ("exact", "near")}
    correct = [k for k, r in flagged.items() if truth[k][0] == truth[r["duplicate_of"]][0]]
    # every group keeps exactly one image: n copies give n - 1 duplicates; found / planted = recall
    sizes = {}
    for g, _ in truth.values():
        sizes[g] = sizes.get(g, 0) + 1
    return len(correct) / len(flagged), len(correct) / sum(n - 1 for n in sizes.values())


def test_near_and_exact_duplicates_are_found_precisely(built):
    out, truth, rows, _ = built
    flagged = {r["key"]: r for r in rows if r["kind"] in ("exact", "near")}
    precision, recall = _precision_recall(truth, rows)
    assert precision >= 0.98 and recall >= 0.9, (precision, recall)
    exact_keys = [k for k, (_, kind) in truth.items() if kind == "exact"]
    originals = {truth[k][0]: k for k, (_, kind) in truth.items() if kind == "original"}
    pairs = {frozenset((k, originals[truth[k][0]])) for k in exact_keys}
    exact_found = {frozenset((r["key"], r["duplicate_of"])) for r in rows if r["kind"] == "exact"}
    assert pairs <= exact_found  # exact recall 1.0
    assert all(r["distance"] <= 8 for r in rows)
    # look-alikes (same scene generator, different shot) are never merged with their neighbour
    looks = {k for k, (g, _) in truth.items() if g >= 1000}
    assert not looks & set(flagged) and not looks & {r["duplicate_of"] for r in flagged.values()}


def test_halves_scheme_meets_the_same_bar(built):
    import duckdb

    from regionset.pipelines.dedup.group import find_duplicates

    out, truth, rows, _ = built
    con = duckdb.connect()
    try:
        find_duplicates(con, sorted(str(p) for p in (out / "hashes").glob("part-*.parquet")), "", 8, scheme="halves")
        halves = con.sql("SELECT * FROM dups").to_arrow_table().to_pylist()
    finally:
        con.close()
    precision, recall = _precision_recall(truth, halves)
    assert precision >= 0.98 and recall >= 0.9, (precision, recall)
    # a subset of what the bands find (a half within one bit has an equal 16-bit quarter)
    assert {r["key"] for r in halves} <= {r["key"] for r in rows if r["kind"] != "eval"}


def test_eval_images_are_flagged_and_nothing_else(built):
    out, truth, rows, _ = built
    flagged = {r["key"] for r in rows if r["kind"] == "eval"}
    in_eval_groups = {k for k, (g, _) in truth.items() if g < 3}
    assert flagged <= in_eval_groups
    assert {k for k in in_eval_groups if truth[k][1] == "original"} <= flagged
    assert all(r["duplicate_of"].endswith(".jpg") and "unrelated" not in r["duplicate_of"]
               for r in rows if r["kind"] == "eval")


def test_catalog_has_duplicates_view(built):
    from regionset.pipelines.core.catalog import connect

    out, _, rows, _ = built
    con = connect(out)
    try:
        assert con.execute("SELECT count(*) FROM duplicates").fetchone()[0] == len(rows)
    finally:
        con.close()


def test_incremental_hashes_only_new_shards_and_keeps_earlier_rows(tmp_path, server):
    from regionset.pipelines.build import build

    urls, _, _, _ = _corpus(server)
    first = build(download_only(tmp_path / "out", write_urls(tmp_path / "a", urls[:40]), shard_size=20,
                                extra=[STEPS]))
    assert {r.stage: r.done for r in first.reports}["dedup"] == 2
    before = {s: (tmp_path / "out" / "duplicates" / f"part-0000{s}.parquet").read_bytes() for s in (0, 1)}
    again = build(download_only(tmp_path / "out", write_urls(tmp_path / "b", urls[:80]), shard_size=20,
                                extra=[STEPS]))
    dedup = {r.stage: r for r in again.reports}["dedup"]
    assert (dedup.done, dedup.skipped) == (2, 2)
    assert again.globals["group_duplicates"]["from_shard"] == 2
    assert again.globals["group_duplicates"]["scheme"] == "bands"  # auto, below dedup.auto_limit
    for s, body in before.items():
        assert (tmp_path / "out" / "duplicates" / f"part-0000{s}.parquet").read_bytes() == body
    late = pq.read_table(tmp_path / "out" / "duplicates" / "part-00003.parquet").to_pylist()
    assert any(r["duplicate_of"] < "00002" for r in late)  # new images matched against the old


def test_unreadable_against_path_exits_2_naming_it(tmp_path, server, capsys):
    import yaml

    from regionset.pipelines.cli import main

    url = server.add("a.jpg", _jpeg(__import__("PIL.Image").Image.new("RGB", (64, 48), (200, 10, 10))))
    cfg = tmp_path / "build.yaml"
    cfg.write_text(yaml.safe_dump({"output": str(tmp_path / "out"), "input": {"path": str(write_urls(tmp_path, [url]))},
                                   "download": {"allow_loopback": True}, "progress": False}))
    missing = tmp_path / "no-such-eval-set"
    assert main(["build", str(cfg), STEPS, f"dedup.against=[{missing}]"]) == 2
    assert str(missing) in capsys.readouterr().err


def test_detect_skips_duplicates_unless_switched_off(built):
    from regionset.pipelines.executors.local import LocalExecutor
    from regionset.stages.detect import DetectConfig, DetectStage

    out, _, rows, reports = built
    assert reports["detect"].counters["skip:duplicate"] == len({r["key"] for r in rows})
    kept = LocalExecutor(show_progress=False).run_stage(DetectStage(DetectConfig(skip_duplicates=False)), out, [0, 1])
    assert kept.done == 2 and "skip:duplicate" not in kept.counters


def test_bands_must_divide_64():
    from regionset.common.typed_config import ConfigError
    from regionset.pipelines.config import load_config

    with pytest.raises(ConfigError, match="dedup.bands"):
        load_config(None, ["dedup.bands=5"])
