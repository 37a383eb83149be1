"""Commands over an output (sql, status, report, sample, retry, catalog) pointed at a folder or URL
that holds no regionset output exit 2 with one line (pipelines/core/output_check.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from regionset.pipelines.cli import OUTPUT_COMMANDS, main
from regionset.pipelines.core.output_check import is_output
from tests.s3server import BUCKET, s3  # noqa: F401 (fixture)


def _argv(cmd: str, out: str, tmp_path: Path) -> list[str]:
    extra = {"sql": ["SELECT count(*) FROM images"], "sample": ["--size", "5", "--to", str(tmp_path / "s.parquet")]}
    return [cmd, out, *extra.get(cmd, [])]


def _assert_one_line(capsys, cmd: str, out: str) -> None:
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert err == [f"regionset {cmd}: error: {out} holds no regionset output (no regionset.yaml or _state/): "
                   f"run regionset build first or check the path"], err


@pytest.mark.parametrize("cmd", OUTPUT_COMMANDS)
@pytest.mark.parametrize("case", ["missing", "empty", "other files"])
def test_local_folder_without_output_exits_2(cmd, case, tmp_path, capsys):
    out = tmp_path / "out"
    if case != "missing":
        out.mkdir()
    if case == "other files":
        (out / "notes.txt").write_text("not a build\n")
        (out / "images").mkdir()
        (out / "images" / "part-00000.parquet").write_bytes(b"PAR1")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(_argv(cmd, str(out), tmp_path)) == 2
    _assert_one_line(capsys, cmd, str(out))
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


@pytest.mark.parametrize("marker", ["regionset.yaml", "_state/", "catalog.duckdb"])
def test_each_marker_makes_an_output(marker, tmp_path):
    assert not is_output(tmp_path)
    if marker.endswith("/"):
        (tmp_path / marker).mkdir()
    else:
        (tmp_path / marker).write_text("")
    assert is_output(tmp_path)


def test_object_store_without_output_exits_2(s3, tmp_path, capsys):  # noqa: F811 (fixture)
    s3fs_path = f"s3://{BUCKET}/nothing-here"
    for cmd in OUTPUT_COMMANDS:
        assert main(_argv(cmd, s3fs_path, tmp_path)) == 2, cmd
        _assert_one_line(capsys, cmd, s3fs_path)
    missing_bucket = "s3://a-bucket-that-does-not-exist/x"
    assert main(["sql", missing_bucket, "SELECT count(*) FROM images"]) == 2
    _assert_one_line(capsys, "sql", missing_bucket)
    assert not list(tmp_path.iterdir())


def test_object_store_output_is_found(s3):  # noqa: F811 (fixture)
    from regionset.common.storage import as_path

    (as_path(s3.url("built")) / "regionset.yaml").write_text("regionset_lineage: 1\n")
    assert is_output(s3.url("built")) and not is_output(s3.url("buil"))
    (as_path(s3.url("old")) / "_state" / "download" / "part-00000.json").write_text("{}")
    assert is_output(s3.url("old"))
