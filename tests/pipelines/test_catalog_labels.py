"""Catalog: cluster tree and sizes, histogram and level-0 views, vocabulary and top OCR tokens."""

from __future__ import annotations

import numpy as np

from regionset.pipelines.config import BuildConfig
from regionset.pipelines.core.catalog import build_catalog, connect
from regionset.pipelines.executors.local import LocalExecutor
from regionset.pipelines.kmeans.config import KMeansConfig
from regionset.stages.assign import AssignConfig, AssignStage
from tests.helpers import run_fit_kmeans
from tests.label_data import gaussian_mixture, write_region_shard


def test_cluster_and_vocab_tables(tmp_path):
    x, _ = gaussian_mixture(60, k=6, d=8, seed=2)
    texts = {100: "exit only", 101: "exit", 102: ""}
    write_region_shard(tmp_path, 0, np.arange(30), x[:30], texts=texts)
    write_region_shard(tmp_path, 1, np.arange(30, 60), x[30:])
    run_fit_kmeans(tmp_path, BuildConfig(kmeans=KMeansConfig(levels=(3, 2), sample_size=100)), [0, 1])
    stage = AssignStage(AssignConfig(kmeans_dir=str(tmp_path / "kmeans")))
    LocalExecutor(show_progress=False).run_stage(stage, tmp_path, [0, 1])
    build_catalog(tmp_path)
    con = connect(tmp_path)
    try:
        assert con.execute("SELECT count(*) FROM cluster_tree").fetchone()[0] == 3 + 6
        sizes = dict(con.execute("SELECT level, sum(size) FROM clusters GROUP BY level").fetchall())
        assert sizes == {0: 60, 1: 60}
        # children's sizes add up to their parent's
        bad = con.execute("""SELECT count(*) FROM clusters p JOIN (
            SELECT parent, sum(size) s FROM clusters WHERE level = 1 GROUP BY parent) c ON c.parent = p.id
            WHERE p.level = 0 AND p.size != c.s""").fetchone()[0]
        assert bad == 0
        assert con.execute("SELECT sum(clusters) FROM cluster_size_histogram").fetchone()[0] == 9
        top = con.execute("SELECT cluster_id, regions FROM regions_per_cluster_l0").fetchall()
        assert len(top) == 3 and sum(r for _, r in top) == 60 and top[0][1] >= top[-1][1]
        tokens = con.execute("SELECT token, regions FROM top_ocr_tokens").fetchall()
        assert tokens[0] == ("exit", 2) and ("only", 1) in tokens
        vocab = con.execute("SELECT tokenizer, vocab_size, tokens_used, text_regions FROM vocab").fetchone()
        assert vocab == ("open_clip", 49408, 2, 2)
    finally:
        con.close()


def test_catalog_without_labels_still_builds(tmp_path):
    build_catalog(tmp_path)
    con = connect(tmp_path)
    try:
        assert con.execute("SELECT count(*) FROM clusters").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM top_ocr_tokens").fetchone()[0] == 0
    finally:
        con.close()
