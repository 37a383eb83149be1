"""Whatever the internet throws at the downloader: one ledger row per URL with the expected status."""

from __future__ import annotations

import io

import pyarrow as pa
import pytest
from PIL import Image

from pipelines.demo.server import LoopbackServer
from stages.download import DownloadConfig, DownloadStage, make_key
from tests.reliability.hostile import hostile_cases


@pytest.fixture
def ipv6_server():
    try:
        s = LoopbackServer(ipv6=True)
    except OSError as err:
        pytest.skip(f"no IPv6 loopback here: {err}")
    with s:
        yield s


def test_every_hostile_case_gets_its_status(server, ipv6_server):
    cases = hostile_cases(server, ipv6_server)
    assert len(cases) >= 30
    names = list(cases)
    table = pa.table({"key": [make_key(0, i, 100) for i in range(len(names))],
                      "url": [cases[n][0] for n in names], "caption": names})
    stage = DownloadStage(DownloadConfig(allow_loopback=True, timeout=2, deadline=3))
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
    print(f"\nhostile corpus: {len(cases)} cases, all with the expected ledger status")

    # EXIF orientation is applied: the stored image is upright (360 wide, 480 tall).
    rot = rows["exif_rotated_jpeg"]
    assert (rot["width"], rot["height"]) == (360, 480)
    for name in ("gif_animated", "png_16bit", "png_palette_transparency", "cmyk_jpeg", "webp", "gzip_encoded"):
        img = Image.open(io.BytesIO(rows[name]["jpg"]))
        img.load()
        assert img.mode == "RGB", name
    assert server.hits.get("/files/bomb.png") == 1  # fetched, then refused before decoding
