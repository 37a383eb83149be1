"""The driver's metrics endpoint (``metrics.port``): scraped during a build, it matches the summary."""

from __future__ import annotations

import re
import urllib.request
from types import SimpleNamespace

import pytest

from regionset.pipelines.build import build
from regionset.pipelines.core.metrics import BuildMetrics, MetricsConfig, MetricsServer
from regionset.pipelines.executors.local import LocalExecutor
from tests.conftest import make_jpeg
from tests.helpers import download_only, write_urls
from tests.pipelines.clusters import free_port

LINE = re.compile(r'^(regionset_[a-z_]+)(?:\{(.*)\})? (\S+)$')


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text format -> {(name, labels): value}; every sample line must parse."""
    got = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        assert m, line
        labels = tuple(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        got[(m.group(1), labels)] = float(m.group(3))
    return got


class FakeScraper:
    """A watcher that scrapes the endpoint after every marker, as Prometheus would during the build."""

    def __init__(self, port: int) -> None:
        self.url, self.scrapes = f"http://127.0.0.1:{port}/metrics", []

    def planned(self, stage, todo, skipped):
        pass

    def shard_done(self, marker):
        with urllib.request.urlopen(self.url, timeout=5) as r:
            assert r.headers["Content-Type"].startswith("text/plain")
            self.scrapes.append((marker.stage, parse(r.read().decode())))


def test_scraped_during_a_build_matches_the_summary(server, tmp_path):
    urls = [server.add(f"m{i}.jpg", make_jpeg(100 + 4 * i, 80)) for i in range(7)]
    urls[1] = server.url("status/404")
    port = free_port()
    cfg = download_only(tmp_path / "out", write_urls(tmp_path, urls), shard_size=3,
                        extra=["steps=[download,dedup]", f"metrics.port={port}"])
    ex = LocalExecutor(1, show_progress=False)
    scraper = FakeScraper(port)
    ex.watchers.append(scraper)  # after the build's own: each scrape sees the marker just counted
    with ex:
        result = build(cfg, executor=ex)
    assert len(scraper.scrapes) == 6  # 3 shards x 2 stages, each scraped while the build ran
    final = scraper.scrapes[-1][1]
    for r in result.reports:
        lab = (("stage", r.stage),)
        assert final[("regionset_shards_done_total", lab)] == r.done == 3
        assert final[("regionset_shards_planned_total", lab)] == 3
        assert final[("regionset_rows_in_total", lab)] == r.rows_in
        assert final[("regionset_rows_out_total", lab)] == r.rows_out
        assert final[("regionset_shards_failed_total", lab)] == 0
        for key, n in r.counters.items():
            if ":" in key:
                kind, reason = key.split(":", 1)
                assert final[("regionset_events_total", (("stage", r.stage), ("kind", kind), ("reason", reason)))] == n
    images = sum(p.stat().st_size for p in (tmp_path / "out" / "images").glob("part-*.parquet"))
    assert final[("regionset_bytes_written_total", (("stage", "download"),))] == images
    assert final[("regionset_process_resident_bytes", (("process", "driver"),))] > 0
    first = scraper.scrapes[0][1]
    assert first[("regionset_shards_done_total", (("stage", "download"),))] == 1  # live, not only at the end
    with pytest.raises(OSError):  # closed with the build
        urllib.request.urlopen(scraper.url, timeout=2)


def test_render_with_fake_clock_and_memory():
    t = iter([0.0, 30.0, 60.0]).__next__
    m = BuildMetrics(clock=t, memory=lambda: {"driver": 100, "worker-7": 50})  # started at 0
    m.planned("embed", 2, 1)
    m.shard_done(SimpleNamespace(stage="embed", rows_in=10, rows_out=40, counters={"drop:empty_crop": 2, "n": 1}))
    got = parse(m.render())  # now = 60
    assert got[("regionset_rows_out_per_second", (("stage", "embed"),))] == pytest.approx(40 / 60)
    assert got[("regionset_shards_skipped_total", (("stage", "embed"),))] == 1
    assert got[("regionset_events_total", (("stage", "embed"), ("kind", "drop"), ("reason", "empty_crop")))] == 2
    assert got[("regionset_process_resident_bytes", (("process", "worker-7"),))] == 50


def test_port_in_use_is_a_config_error(tmp_path):
    from regionset.common.typed_config import ConfigError

    with MetricsServer(BuildMetrics(), 0) as first, pytest.raises(ConfigError, match="metrics.port"):
        MetricsServer(BuildMetrics(), first.port)
    with pytest.raises(ConfigError, match="metrics.port"):
        MetricsConfig(port=70000).check()


def test_grafana_dashboard_uses_only_served_metric_names():
    import json
    from pathlib import Path

    dash = json.loads((Path(__file__).resolve().parents[2] / "docs" / "grafana-regionset.json").read_text())
    used = {n for p in dash["panels"] for t in p["targets"] for n in re.findall(r"regionset_[a-z_]+", t["expr"])}
    served = set(re.findall(r"^# TYPE (regionset_[a-z_]+)", BuildMetrics(memory=dict).render(), re.M))
    assert used and used <= served


def test_build_with_a_busy_metrics_port_is_one_line_exit_2(server, tmp_path, capsys):
    import socket

    from regionset.pipelines.cli import main

    urls = write_urls(tmp_path, [server.add("b.jpg", make_jpeg(90, 60))])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        rc = main(["build", f"output={tmp_path / 'out'}", f"input.path={urls}", "steps=[download]", "progress=false",
                   "download.allow_loopback=true", f"metrics.port={port}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith(f"regionset build: error: metrics.port: cannot listen on 127.0.0.1:{port}")
