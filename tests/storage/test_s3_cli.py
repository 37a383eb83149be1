"""``regionset`` processes against a loopback S3 server: demo, sql/status/catalog, kill -9 and resume,
two writers, bad storage, and no credential anywhere in what a build writes or prints."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from regionset.pipelines.core.lease import LeaseLock
from tests.conftest import make_jpeg
from tests.helpers import table_hash, write_urls
from tests.s3server import BUCKET, SECRET, moto_process, s3  # noqa: F401 (fixture)


def _cli(*args: str, env: dict | None = None, failpoint: str = "", timeout: float = 600) -> subprocess.CompletedProcess:
    full = {**os.environ, **(env or {}), "REGIONSET_FAILPOINT": failpoint}
    return subprocess.run([sys.executable, "-m", "regionset.pipelines.cli", *args], env=full, capture_output=True,
                          text=True, timeout=timeout)


def _config(tmp: Path, out: str, urls: Path, name: str = "cfg") -> Path:
    cfg = {"output": out, "input": {"path": str(urls), "shard_size": 3}, "progress": False, "steps": ["download"],
           "download": {"allow_loopback": True, "timeout": 3}}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _urls(server, tmp: Path, n: int = 7) -> Path:
    return write_urls(tmp, [server.add(f"k{i}.jpg", make_jpeg(200 + 8 * i, 160, (i * 30, 90, 40))) for i in range(n)])


def test_demo_sql_status_catalog_and_no_secret_anywhere(s3, tmp_path):  # noqa: F811
    """The full demo (every default step, global ones included) into s3://…, then its catalog."""
    out = s3.url("demo")
    demo = _cli("demo", "--out", out, "--limit", "4")
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "clusters (SELECT * FROM clusters)" in demo.stdout
    sql = _cli("sql", out, "SELECT count(*) AS n FROM regions")
    assert sql.returncode == 0, sql.stderr[-2000:]
    train = _cli("sql", out, "SELECT count(*) AS n FROM train")
    assert train.returncode == 0, train.stderr[-2000:]
    assert re.findall(r"│\s*(\d+)\s*│", train.stdout) == ["3"]  # the 3 images with a labelled region
    status = _cli("status", out, "--json")
    assert status.returncode == 0 and '"pack"' in status.stdout and "group_duplicates.json" not in status.stdout
    report = _cli("report", out)
    assert report.returncode == 0, report.stderr[-2000:]
    index = Path(report.stdout.strip().splitlines()[-1])
    assert index.name == "index.html" and index.is_file() and "Overview" in index.read_text()
    cat = _cli("catalog", out, "--to", str(tmp_path / "c.duckdb"))
    assert cat.returncode == 0 and (tmp_path / "c.duckdb").exists()
    import duckdb

    con = duckdb.connect(str(tmp_path / "c.duckdb"), read_only=True)
    con.register_filesystem(__import__("regionset.common.storage", fromlist=["as_path"]).as_path(out).fs)
    assert con.execute("SELECT count(*) FROM images").fetchone()[0] == 6  # 4 images + 2 bad URLs
    con.close()
    got = s3.download("demo", tmp_path / "got")
    assert (got / "regionset.yaml").exists() and list((got / "_state" / "runs").glob("*.json"))
    assert {"kmeans/kmeans.json", "_state/group_duplicates.json"} <= set(s3.keys("demo"))
    texts = [demo.stdout, demo.stderr, train.stdout, sql.stdout, sql.stderr, status.stdout, cat.stdout, report.stdout, report.stderr]
    blobs = [f.read_bytes() for f in got.rglob("*") if f.is_file()]
    blobs += [f.read_bytes() for f in Path(os.environ["REGIONSET_CATALOG_DIR"]).rglob("*") if f.is_file()]
    blobs.append((tmp_path / "c.duckdb").read_bytes())
    assert not any(SECRET in t for t in texts) and not any(SECRET.encode() in b for b in blobs)


def test_kill_mid_shard_then_resume(server, s3, tmp_path):  # noqa: F811
    urls = _urls(server, tmp_path)
    ref = _cli("build", str(_config(tmp_path, str(tmp_path / "ref"), urls, "ref")))
    assert ref.returncode == 0, ref.stderr[-2000:]
    for i, point in enumerate(("mid_shard:download", "shard_written:download")):
        prefix = f"kill{i}"
        config = _config(tmp_path, s3.url(prefix), urls, prefix)
        killed = _cli("build", str(config), failpoint=point)
        assert killed.returncode == -9
        resumed = _cli("build", str(config))  # the dead build's lease (same host, pid gone) is stale
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        got = s3.download(prefix, tmp_path / prefix)
        assert table_hash(got, "images") == table_hash(tmp_path / "ref", "images")
        assert sorted(p.name for p in (got / "images").iterdir()) == sorted(
            p.name.replace(".json", ".parquet") for p in (got / "_state" / "download").glob("part-*.json"))


def test_second_writer_refused_and_stale_lease_taken_over(server, s3, tmp_path):  # noqa: F811
    urls = _urls(server, tmp_path, 3)
    config = _config(tmp_path, s3.url("locked"), urls)
    with LeaseLock(s3.url("locked"), lease_seconds=30):
        second = _cli("build", str(config))
    assert second.returncode == 2
    assert f"pid {os.getpid()}" in second.stderr and socket.gethostname() in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    stale = LeaseLock(s3.url("stale"), lease_seconds=1)  # a dead build elsewhere: silent for its lease
    stale.info["holder"].update(host="another-host", boot_id="another-boot")
    assert stale.path.create_exclusive(stale._payload())
    took = _cli("build", str(_config(tmp_path, s3.url("stale"), urls, "stale")))
    assert took.returncode == 0, took.stderr[-2000:]


def test_bad_storage_exits_2_with_one_line(server, s3, tmp_path):  # noqa: F811
    urls = _urls(server, tmp_path, 2)
    missing = _cli("build", str(_config(tmp_path, "s3://no-such-bucket-x/out", urls, "m")))
    assert missing.returncode == 2 and "s3://no-such-bucket-x/out" in missing.stderr
    assert "bucket does not exist" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    t0 = time.time()
    wrong = _cli("build", str(_config(tmp_path, s3.url("wrong"), urls, "w")),
                 env={"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"})
    assert wrong.returncode == 2 and "cannot reach the endpoint" in wrong.stderr, wrong.stderr[-1000:]
    assert len(wrong.stderr.strip().splitlines()) == 1 and time.time() - t0 < 300
    assert s3.keys("wrong") == []  # nothing written before the refusal


def test_bad_credentials_exit_2(server, tmp_path):
    """A second S3 server that checks credentials (moto with IAM auth on): unknown keys are refused."""
    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    with moto_process(INITIAL_NO_AUTH_ACTION_COUNT="0") as endpoint:
        env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "unknown-key",
               "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1"}
        bad = _cli("build", str(_config(tmp_path, f"s3://{BUCKET}/creds", _urls(server, tmp_path, 2))), env=env)
    assert bad.returncode == 2 and "bad credentials" in bad.stderr and f"s3://{BUCKET}/creds" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and SECRET not in bad.stderr + bad.stdout
