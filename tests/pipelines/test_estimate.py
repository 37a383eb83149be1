"""``regionset estimate`` end to end on a loopback sample: measured units, JSON, cleanup, bad rates."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from regionset.pipelines.cli import main
from regionset.pipelines.config import load_config
from regionset.pipelines.tools.estimate.measure import measure_sample
from tests.conftest import make_jpeg
from tests.helpers import write_urls


def _overrides(server, tmp_path: Path, n: int = 12) -> list[str]:
    urls = [server.add(f"e{i}.jpg", make_jpeg(120 + 8 * i, 90, (i * 20, 90, 40))) for i in range(n)]
    urls[2] = server.url("status/404")
    return [f"input.path={write_urls(tmp_path, urls)}", "input.shard_size=4", "steps=[download,dedup]",
            "download.allow_loopback=true", "download.timeout=2", f"output={tmp_path / 'never-written'}"]


def _estimate_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("regionset-estimate-*")}


def test_measure_records_units_bytes_and_cleans_up(server, tmp_path):
    before = _estimate_dirs()
    cfg = load_config(None, _overrides(server, tmp_path))
    costs = measure_sample(cfg, 8)
    assert costs["sample_images"] == 8 and costs["shard_size"] == 4
    d = costs["stages"]["download"]
    assert d["kind"] == "shard" and d["units"] == 8 and d["rows_out"] == 8 and d["unit"] == "image"
    assert d["wall_s"] > 0 and d["cpu_s"] >= 0 and d["gpu_s"] == 0.0 and d["inputs"] == ["input"]
    assert costs["stages"]["dedup"]["units"] == 8
    assert costs["tables"]["images"]["rows"] == 8 and costs["tables"]["images"]["files"] == 2
    assert costs["tables"]["images"]["bytes"] > 0
    assert costs["peak_rss_mib"]["driver"] > 0
    assert _estimate_dirs() == before  # the temporary output is gone
    assert not (tmp_path / "never-written").exists()  # the configured output is never touched


def test_cli_json_is_the_last_line(server, tmp_path, capsys):
    rc = main(["estimate", *_overrides(server, tmp_path), "--images", "40", "--sample", "8", "--workers", "4",
               "--json"])
    assert rc == 0
    out = capsys.readouterr().out.strip().splitlines()
    doc = json.loads(out[-1])
    assert doc["images"] == 40 and doc["workers"] == 4
    assert set(doc["stages"]) == {"download", "dedup"}
    for s in doc["stages"].values():
        assert {"wall_s", "cpu_s", "gpu_s", "from", "extrapolated"} <= set(s)
    assert doc["wall_s"] == pytest.approx(sum(s["wall_s"] for s in doc["stages"].values()))
    assert doc["bytes"]["images"] == pytest.approx(doc["unit_costs"]["tables"]["images"]["bytes"] * 5)
    assert {"core_hours", "gpu_hours", "shards", "files", "requests"} <= set(doc)


def test_bad_rates_file_is_one_line_exit_2(server, tmp_path, capsys):
    rates = tmp_path / "rates.yaml"
    rates.write_text("embed: {units_per_s: -3}\n")
    rc = main(["estimate", *_overrides(server, tmp_path), "--images", "40", "--rates", str(rates)])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "regionset estimate: error: --rates: embed.units_per_s must be a positive number"


def test_first_shard_excess_is_warm_up_not_rate():
    from types import SimpleNamespace

    from regionset.pipelines.tools.estimate.measure import steady_seconds

    ms = [SimpleNamespace(seconds=9.0, rows_in=10, finished_at=1.0),  # 5 s of first-call costs
          SimpleNamespace(seconds=4.0, rows_in=10, finished_at=2.0), SimpleNamespace(seconds=2.0, rows_in=5,
                                                                                       finished_at=3.0)]
    work, warm = steady_seconds(ms)
    assert warm == pytest.approx(5.0) and work == pytest.approx(10.0)  # 25 rows at 0.4 s/row
    assert steady_seconds(ms[:1]) == (9.0, 0.0)
