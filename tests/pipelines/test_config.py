"""Config: YAML + key=value overrides; unknown keys and wrong types fail naming the key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from regionset.common.typed_config import ConfigError
from regionset.pipelines.config import load_config


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("output: /tmp/x\ninput:\n  path: urls.txt\n  shard_size: 7\ndownload:\n  thread_count: 3\n")
    cfg = load_config(p, ["download.timeout=2.5", "input.shard_size=9"])
    assert (cfg.output, cfg.input.shard_size, cfg.download.thread_count, cfg.download.timeout) == \
        ("/tmp/x", 9, 3, 2.5)


@pytest.mark.parametrize("override,key", [
    ("download.thread_cnt=3", "download.thread_cnt"),
    ("download.thread_count=lots", "download.thread_count"),
    ("download.resize_mode=stretch", "download.resize_mode"),
    ("nonsense=1", "nonsense"),
    ("input.shard_size=0", "input.shard_size"),
])
def test_errors_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_cli_exit_code_and_message(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("download:\n  tread_count: 3\n")
    r = subprocess.run([sys.executable, "-m", "regionset.pipelines.cli", "build", str(p)], capture_output=True, text=True)
    assert r.returncode == 2
    assert "download.tread_count" in r.stderr


def test_printed_config_round_trips(tmp_path):
    r = subprocess.run([sys.executable, "-m", "regionset.pipelines.cli", "config", "input.shard_size=7"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    p = tmp_path / "all.yaml"
    p.write_text(r.stdout)
    assert load_config(p) == load_config(None, ["input.shard_size=7"])


def test_build_without_a_config_file(server, tmp_path):
    from regionset.pipelines.cli import main
    from regionset.pipelines.tools.demo.run import write_url_list

    urls = write_url_list(server, tmp_path / "urls", limit=2)
    out = tmp_path / "out"
    rc = main(["build", f"output={out}", f"input.path={urls}", "download.allow_loopback=true",
               "steps=[download]", "progress=false"])
    assert rc == 0
    assert sorted(p.name for p in (out / "images").glob("*.parquet")) == ["part-00000.parquet"]
    assert (out / "catalog.duckdb").exists()


def test_init_writes_every_section_with_comments_and_loads_back(tmp_path):
    import dataclasses

    from regionset.common.yaml_doc import field_docs
    from regionset.pipelines.cli import main
    from regionset.pipelines.config import BuildConfig

    path = tmp_path / "build.yaml"
    assert main(["init", str(path)]) == 0
    text = path.read_text()
    assert load_config(path) == BuildConfig()  # the defaults, from the dataclasses
    for f in dataclasses.fields(BuildConfig):  # every section and key, each documented above it
        doc = field_docs(BuildConfig)[f.name]
        assert f"# {doc.split()[0]}" in text and f"\n{f.name}:" in text, f.name
    assert "  # an existing cluster" in text and "    address: ''" in text  # nested sections too
    assert main(["init", str(path)]) == 2  # never overwrites without --force
    assert main(["init", str(path), "--force"]) == 0
