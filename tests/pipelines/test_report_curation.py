"""The report's curation page: duplicate pairs side by side, cluster sizes before/after balanced sampling."""

from __future__ import annotations

import pyarrow as pa

from regionset.pipelines.core.catalog import build_catalog
from regionset.pipelines.core.shards import shard_path, write_table
from regionset.pipelines.tools.report.build import write_report
from regionset.schemas import DUPLICATES, duplicates_schema
from tests.pipelines.report_synthetic import build_synthetic


def test_curation_page_shows_pairs_and_sizes(tmp_path):
    out = build_synthetic(tmp_path / "out")
    rows = [{"key": "000000001", "duplicate_of": "000000000", "kind": "near", "distance": 5},
            {"key": "000000002", "duplicate_of": "/eval/cat.jpg", "kind": "eval", "distance": 3}]
    write_table(pa.Table.from_pylist(rows, duplicates_schema()), shard_path(out, DUPLICATES, 0))
    build_catalog(out)
    index = write_report(out, clusters=1, per_cluster=1, images=1)
    page = (index.parent / "curation.html").read_text()
    assert "Hamming distance 5" in page and "Hamming distance 3" in page and "/eval/cat.jpg" in page
    assert (index.parent / "duplicates" / "0-dup.jpg").is_file() and (index.parent / "duplicates" / "0-kept.jpg").is_file()
    assert 'src="plots/leaf_sizes_before.png"' in page and 'src="plots/leaf_sizes_after.png"' in page
    assert 'href="curation.html"' in (index.parent / "index.html").read_text()


def test_curation_page_without_data_says_so(tmp_path):
    out = build_synthetic(tmp_path / "out")
    page = (write_report(out, clusters=1, per_cluster=1, images=1).parent / "curation.html").read_text()
    assert "no data yet: no duplicates" in page


def _build_images(server, tmp_path, steps: list[str]):
    """A real build of 4 distinct (non-duplicate) synthetic scenes with ``steps``; its output folder."""
    from regionset.pipelines.build import build
    from regionset.pipelines.config import load_config
    from tests.helpers import write_urls
    from tests.synth import encode, synthetic_scene

    urls = [server.add(f"s{i}.jpg", encode(synthetic_scene(seed=i, size=(360, 400))[0])) for i in range(4)]
    out = tmp_path / "out"
    build(load_config(None, [f"output={out}", f"input.path={write_urls(tmp_path / 'urls', urls)}",
                             "download.allow_loopback=true", "progress=false", f"steps={steps}"]))
    return out


def test_curation_page_after_dedup_without_duplicates_counts_the_hashed_images(server, tmp_path):
    out = _build_images(server, tmp_path, ["download", "dedup", "group_duplicates"])
    page = (write_report(out, clusters=1, per_cluster=1, images=1).parent / "curation.html").read_text()
    assert "4 images hashed, 0 duplicate groups" in page and "run the dedup" not in page


def test_curation_page_without_the_dedup_steps_suggests_them(server, tmp_path):
    out = _build_images(server, tmp_path, ["download"])
    page = (write_report(out, clusters=1, per_cluster=1, images=1).parent / "curation.html").read_text()
    assert "run the dedup and group_duplicates steps" in page and "0 duplicate groups" not in page
