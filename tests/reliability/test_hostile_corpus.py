"""Whatever the internet throws at the downloader: one ledger row per URL with the expected status."""

from __future__ import annotations

import io

import pyarrow as pa
import pytest
from PIL import Image

from regionset.pipelines.tools.demo.server import LoopbackServer
from regionset.stages.download.stage import DownloadConfig, DownloadStage, make_key
from tests.reliability.hostile import FORBIDDEN_HOST, ConnectionRecorder, hostile_cases, redirect_cases


@pytest.fixture
def recorder():
    try:
        r = ConnectionRecorder()
    except OSError as err:
        pytest.skip(f"cannot listen on {FORBIDDEN_HOST} here: {err}")
    yield r
    r.close()


@pytest.fixture
def ipv6_server():
    try:
        s = LoopbackServer(ipv6=True)
    except OSError as err:
        pytest.skip(f"no IPv6 loopback here: {err}")
    with s:
        yield s


def test_every_hostile_case_gets_its_status(server, ipv6_server, recorder):
    cases = {**hostile_cases(server, ipv6_server), **redirect_cases(server, recorder.port)}
    assert len(cases) >= 70
    names = list(cases)
    table = pa.table({"key": [make_key(0, i, 100) for i in range(len(names))],
                      "url": [cases[n][0] for n in names], "caption": names})
    stage = DownloadStage(DownloadConfig(allow_loopback=True, timeout=2, deadline=3,
                                         deny_networks=(f"{FORBIDDEN_HOST}/32",)))
    stage.ensure_setup()
    out = stage.process(table)
    assert out.num_rows == len(names)
    assert out.column("url").to_pylist() == [cases[n][0] for n in names]
    rows = dict(zip(names, out.to_pylist()))
    wrong = {}
    for name, (_, status, err) in cases.items():
        row = rows[name]
        if row["status"] != status or (err and err.lower() not in (row["error_message"] or "").lower()):
            wrong[name] = (row["status"], row["error_message"], "expected", status, err)
    assert not wrong, wrong
    assert recorder.connections == 0  # no redirect reached the forbidden address, by any scheme
    assert stage.take_counters()["status:refused"] >= 35
    print(f"\nhostile corpus: {len(cases)} cases, all with the expected ledger status")

    # EXIF orientation is applied: the stored image is upright (360 wide, 480 tall).
    rot = rows["exif_rotated_jpeg"]
    assert (rot["width"], rot["height"]) == (360, 480)
    for name in ("gif_animated", "png_16bit", "png_palette_transparency", "cmyk_jpeg", "webp", "gzip_encoded"):
        img = Image.open(io.BytesIO(rows[name]["jpg"]))
        img.load()
        assert img.mode == "RGB", name
    assert server.hits.get("/files/bomb.png") == 1  # fetched, then refused before decoding


def test_every_stage_survives_the_hostile_corpus(server, ipv6_server, tmp_path):
    """The whole pipeline on the hostile corpus: no stage crashes; what a stage cannot use is counted."""
    import duckdb

    from regionset.pipelines.build import build
    from regionset.pipelines.config import load_config
    from tests.helpers import write_urls

    cases = hostile_cases(server, ipv6_server)
    urls = write_urls(tmp_path, [u for u, _, _ in cases.values()], list(cases))
    out = tmp_path / "out"
    cfg = load_config(None, [f"output={out}", f"input.path={urls}", "input.shard_size=16", "progress=false",
                             "download.allow_loopback=true", "download.timeout=2", "download.deadline=3"])
    result = build(cfg)
    reports = {r.stage: r for r in result.reports}
    assert reports["download"].rows_out == len(cases)
    con = duckdb.connect(str(out / "catalog.duckdb"), read_only=True)
    assert con.execute("select count(*), count(distinct key) from images").fetchone() == (len(cases), len(cases))
    failed = con.execute("select count(*) from images where status <> 'success'").fetchone()[0]
    for stage in ("detect", "ocr"):
        skipped = sum(v for k, v in reports[stage].counters.items() if k.startswith("skip:"))
        assert skipped >= failed, (stage, reports[stage].counters)
    tiny = reports["detect"].counters
    assert any(k.startswith(("skip:", "drop:")) and "small" in k for k in tiny), tiny  # the 1x1 image
