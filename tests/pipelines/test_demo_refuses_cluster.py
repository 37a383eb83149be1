"""``regionset demo`` on an executor that may run tasks on other hosts refuses with one line, exit 2,
before anything is served or written (issue 32): its images are served on this host's 127.0.0.1, so
before, every download on another host failed and an empty dataset "succeeded"."""

from __future__ import annotations

import pytest

from regionset.pipelines.cli import main


@pytest.mark.parametrize("overrides", [
    ["executor.name=ray", "executor.ray.address=10.0.0.2:6379"],
    ["executor.name=spark", "executor.spark.master=spark://10.0.0.2:7077"],
])
def test_demo_on_a_cluster_executor_refuses_before_any_work(tmp_path, capsys, overrides):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), *overrides])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "127.0.0.1" in err[0] and overrides[1].split("=")[0] in err[0]
    assert not out.exists()
