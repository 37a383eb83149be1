"""Bad input through ``regionset build``: exit 2, one line on stderr naming the file (and line), no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from regionset.pipelines.core.inputs import InputConfig, InputError, iter_urls

ROOT = Path(__file__).resolve().parents[2]

# name -> (file name, bytes, substrings the one-line message must hold besides the file name)
BAD_FILES = {
    "malformed_jsonl_line": ("bad.jsonl", b'{"url": "http://a/1"}\n{"url": oops}\n', ["line 2", "not valid JSON"]),
    "jsonl_not_objects": ("list.jsonl", b'{"url": "http://a/1"}\n[1, 2]\n', ["line 2"]),
    "jsonl_url_changes_type": ("type.jsonl", b'{"url": "http://a/1"}\n\n{"url": 5}\n', ["line 3", "number"]),
    "jsonl_url_becomes_object": ("obj.jsonl", b'{"url": "http://a/1"}\n{"url": {"x": 1}}\n', ["line 2", "object"]),
    "jsonl_binary_garbage": ("bin.jsonl", b"\xff\xfe\x00garbage\n", ["line 1"]),
    "not_parquet": ("fake.parquet", b"this is not a parquet file at all", ["parquet"]),
    "truncated_parquet": ("cut.parquet", None, ["parquet"]),
    "ragged_csv_row": ("ragged.csv", b"url,caption\nhttp://a/1,x\nhttp://a/2,y,z\n", ["line 3", "3 fields"]),
    "url_column_is_a_struct": ("struct.parquet", None, ["'url'", "not text"]),
    "empty_txt": ("empty.txt", b"", ["no URLs"]),
    "empty_jsonl": ("empty.jsonl", b"", ["no URLs"]),
    "blank_lines_txt": ("blank.txt", b"\n  \n\n", ["no URLs"]),
    "header_only_csv": ("header.csv", b"url,caption\n", ["no URLs"]),
    "no_url_column": ("nourl.csv", b"link\nhttp://a/1\n", ["no column 'url'"]),
}


def _write_bad(folder: Path, name: str) -> Path:
    fname, data, _ = BAD_FILES[name]
    path = folder / fname
    if name == "truncated_parquet":
        pq.write_table(pa.table({"url": [f"http://a/{i}" for i in range(100)]}), path)
        path.write_bytes(path.read_bytes()[:-40])
    elif name == "url_column_is_a_struct":
        pq.write_table(pa.table({"url": [{"host": "a", "path": "/1"}]}), path)
    else:
        path.write_bytes(data)
    return path


def _build(tmp_path: Path, *overrides: str, config: str | None = None) -> subprocess.CompletedProcess:
    cfg = tmp_path / "build.yaml"
    if config is None:
        cfg.write_text(f"output: {tmp_path / 'out'}\nsteps: [download]\nprogress: false\n")
    else:
        cfg.write_bytes(config.encode("utf-8", errors="surrogateescape"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "regionset.pipelines.cli", "build", str(cfg), *overrides],
                          capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)


def _assert_clean_exit(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, (proc.returncode, proc.stderr)
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_input_file_exits_2_with_one_line(tmp_path, name):
    path = _write_bad(tmp_path, name)
    proc = _build(tmp_path, f"input.path={path}")
    _assert_clean_exit(proc, *BAD_FILES[name][2], str(path) if "no URLs" not in BAD_FILES[name][2] else path.name)


def test_output_is_an_existing_file(tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text("http://a/1.jpg\n")
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder")
    proc = _build(tmp_path, f"input.path={urls}", f"output={taken}")
    _assert_clean_exit(proc, "output", str(taken))
    proc = _build(tmp_path, f"input.path={urls}", f"output={taken / 'below'}")
    _assert_clean_exit(proc, "output", str(taken))
    assert taken.read_text() == "a file, not a folder"


@pytest.mark.parametrize("config", ["output: [unclosed\n", "a: b: c\n", "\udcff\udcfe: 1\n", "- a list\n",
                                    "1: 2\nnull: 3\n", "download: {timeout: fast}\n"])
def test_bad_config_file_exits_2_with_one_line(tmp_path, config):
    _assert_clean_exit(_build(tmp_path, config=config), "regionset build: error:")


def test_bad_override_exits_2_with_one_line(tmp_path):
    _assert_clean_exit(_build(tmp_path, "input.path=[unclosed"), "override input.path")
    _assert_clean_exit(_build(tmp_path, "download.proxy=socks5://p"), "download.proxy")
    _assert_clean_exit(_build(tmp_path, "download.deny_networks=[10.0.0.0/33]"), "download.deny_networks")


def test_replaced_bytes_are_counted(tmp_path):
    txt = tmp_path / "urls.txt"
    txt.write_bytes(b"http://a/caf\xe9.jpg\nhttp://a/ok.jpg\nhttp://a/\xff\xfe.jpg\n")
    counters: Counter = Counter()
    urls = [u for u, _ in iter_urls(InputConfig(path=str(txt)), counters)]
    assert urls == ["http://a/caf\ufffd.jpg", "http://a/ok.jpg", "http://a/\ufffd\ufffd.jpg"]
    assert counters == {"input:replaced_bytes": 3}
    csv = tmp_path / "urls.csv"
    csv.write_bytes(b"url,caption\nhttp://a/\xff.jpg,caf\xe9\n")
    counters.clear()
    assert list(iter_urls(InputConfig(path=str(csv)), counters)) == [("http://a/\ufffd.jpg", "caf\ufffd")]
    assert counters == {"input:replaced_bytes": 2}


def test_replaced_bytes_show_in_the_build_summary(tmp_path):
    txt = tmp_path / "urls.txt"
    txt.write_bytes(b"ftp://a/caf\xe9.jpg\n")  # refused before any fetch: no network needed
    cfg = tmp_path / "build.yaml"
    cfg.write_text(f"output: {tmp_path / 'out'}\nsteps: [download]\ninput: {{path: {txt}}}\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "regionset.pipelines.cli", "build", str(cfg)], capture_output=True,
                          text=True, env=env, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    row = [ln for ln in proc.stdout.splitlines() if "replaced_bytes" in ln and "│" in ln]  # a table row
    assert row and "input" in row[0] and "1" in row[0], proc.stdout


def test_folder_with_an_empty_file_is_fine_but_an_empty_folder_is_not(tmp_path):
    (tmp_path / "a.txt").write_text("http://a/1.jpg\n")
    (tmp_path / "b.txt").write_text("")
    assert [u for u, _ in iter_urls(InputConfig(path=str(tmp_path)))] == ["http://a/1.jpg"]
    (tmp_path / "a.txt").write_text("")
    with pytest.raises(InputError, match="no URLs in"):
        list(iter_urls(InputConfig(path=str(tmp_path))))
