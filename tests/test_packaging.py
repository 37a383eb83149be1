"""One import namespace: the wheel installs only ``regionset``, and a user's own ``models/`` or
``common/`` folder in the working directory does not shadow regionset's packages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pyarrow.parquet as pq

from tests.conftest import make_jpeg
from tests.helpers import write_urls

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("common", "schemas", "models", "stages", "pipelines", "training")


def _source_copy(dst: Path) -> Path:
    """The checkout's files (tracked and untracked, not ignored) without build leftovers."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        if (REPO / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dst / rel)
    return dst


def test_wheel_installs_only_regionset(tmp_path):
    src = _source_copy(tmp_path / "src")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q",
                           "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (wheel,) = (tmp_path / "dist").glob("regionset-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"regionset"}, tops
    info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/RECORD"))
    record = zipfile.ZipFile(wheel).read(f"{info}/RECORD").decode()
    assert {line.split("/")[0] for line in record.splitlines() if line} <= {"regionset", info}
    entry_points = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    assert "regionset = regionset.pipelines.cli:main" in entry_points
    # every package folder and data file of the checkout is in the wheel, under regionset/
    for folder in FOLDERS:
        for init in (REPO / folder).rglob("__init__.py"):
            assert f"regionset/{init.relative_to(REPO).as_posix()}" in names, f"{init}: add it to pyproject's packages"
    for data in [*(REPO / "training" / "configs").glob("*.yaml"), *(REPO / "models" / "configs").glob("*.json")]:
        assert f"regionset/{data.relative_to(REPO).as_posix()}" in names, data
    assert "regionset/__init__.py" in names
    # installed from the wheel (no editable finder in the way: PYTHONPATH comes first), it imports
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "-q",
                    "--target", str(site), str(wheel)], check=True, capture_output=True, timeout=600)
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = "import regionset.pipelines.cli as c, regionset.models as m; print(c.__file__); print(m.__file__)"
    got = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert got.returncode == 0, got.stderr[-4000:]
    assert all(line.startswith(str(site)) for line in got.stdout.split()), got.stdout


def test_regionset_works_beside_a_users_own_models_and_common(server, tmp_path):
    work = tmp_path / "work"
    for name in ("models", "common", "pipelines", "training"):
        (work / name).mkdir(parents=True)
        (work / name / "__init__.py").write_text(f"raise ImportError(\"user's {name}\")\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cli = [sys.executable, "-m", "regionset.pipelines.cli"]
    helped = subprocess.run([*cli, "--help"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert helped.returncode == 0 and "build" in helped.stdout, helped.stderr[-4000:]

    urls = [server.add(f"{i}.jpg", make_jpeg(160 + 8 * i, 120)) for i in range(3)]
    out = tmp_path / "out"
    built = subprocess.run([*cli, "build", f"output={out}", f"input.path={write_urls(tmp_path, urls)}",
                            "input.shard_size=4", "steps=[download, detect]", "download.allow_loopback=true",
                            "download.timeout=2", "progress=false"],
                           cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert pq.read_table(out / "images" / "part-00000.parquet").num_rows == 3
    assert (out / "regions" / "object" / "part-00000.parquet").is_file()
