"""The worker probe's verdict (``pipelines/preflight/probe.py`` ``compare``) on fake node reports, and
``node_report`` run in this process; the real probe on Ray and Spark is in test_preflight_cluster.py."""

from __future__ import annotations

import copy

import pytest

from regionset.pipelines.config import load_config
from regionset.pipelines.core.output import Output
from regionset.pipelines.executors.local import LocalExecutor
from regionset.pipelines.preflight.checks import PreflightError
from regionset.pipelines.preflight.probe import compare, node_report, probe_workers


def fake_report(address="10.0.0.2", **changes):
    """A fake node report: what ``node_report`` returns, with ``changes`` applied."""
    report = {"address": address, "host": f"host-{address}", "python": "/opt/venv/bin/python",
              "versions": {"regionset": "0.1.0+aaaaaaaaaaaa", "torch": "2.14.1", "faiss": "1.15.1",
                           "onnxruntime": "1.32.0", "open_clip": "3.3.0", "ultralytics": "8.4.190"},
              "files": {"detect.ultralytics.model": ["/models/yolo.pt", "ab" * 32]}, "output": ""}
    for key, value in changes.items():
        report[key] = value
    return report


DRIVER = fake_report("10.0.0.1")


def _fails(checks):
    return [c for c in checks if c.status == "fail"]


def test_same_everything_is_one_ok_and_one_answer_per_address_counts_once():
    [check] = compare(DRIVER, [fake_report("10.0.0.2"), fake_report("10.0.0.2"), fake_report("10.0.0.3")])
    assert check.status == "ok" and "2 node(s)" in check.detail


def test_a_shadowed_regionset_on_one_node_names_the_node_and_the_key():
    other = fake_report("10.0.0.3")
    other["versions"] = {**other["versions"], "regionset": "0.1.0+bbbbbbbbbbbb"}
    [bad] = _fails(compare(DRIVER, [fake_report("10.0.0.2"), other]))
    assert bad.key == "version:regionset" and "node 10.0.0.3" in bad.detail and "bbbbbbbbbbbb" in bad.detail


def test_a_missing_or_different_model_file_names_the_node_and_the_config_key():
    missing = fake_report("10.0.0.2", files={})
    different = fake_report("10.0.0.3", files={"detect.ultralytics.model": ["/models/yolo.pt", "cd" * 32]})
    bad = _fails(compare(DRIVER, [missing, different]))
    assert [c.key for c in bad] == ["detect.ultralytics.model"] * 2
    assert "node 10.0.0.2" in bad[0].detail and "not reported" in bad[0].detail
    assert "node 10.0.0.3" in bad[1].detail and "cdcdcdcdcdcd" in bad[1].detail


def test_a_model_file_missing_on_a_node_as_node_report_gives_it(tmp_path):
    report = node_report("127.0.0.1", str(tmp_path), "t", {"embed.pretrained": str(tmp_path / "nope.bin")})
    driver = fake_report("127.0.0.1", files={"embed.pretrained": [str(tmp_path / "nope.bin"), "ef" * 32]})
    [bad] = _fails(compare(driver, [{**report, "address": "10.0.0.2", "versions": driver["versions"], "output": ""}]))
    assert bad.key == "embed.pretrained" and "nope.bin is unreadable (No such file or directory)" in bad.detail


def test_an_output_a_node_cannot_see_is_a_failure():
    [bad] = _fails(compare(DRIVER, [fake_report(output="output /data/out here does not hold the driver's probe")]))
    assert bad.key == "output" and "node 10.0.0.2" in bad.detail


def test_loopback_endpoint_fails_only_with_a_node_on_another_host():
    same_host = compare(DRIVER, [fake_report("10.0.0.1")], "http://127.0.0.1:9000")
    assert not _fails(same_host)
    [bad] = _fails(compare(DRIVER, [fake_report("10.0.0.2")], "http://localhost:9000"))
    assert bad.key == "AWS_ENDPOINT_URL" and "node 10.0.0.2" in bad.detail
    assert not _fails(compare(DRIVER, [fake_report("10.0.0.2")], "http://10.0.0.9:9000"))


def test_node_report_here_and_the_probe_through_the_local_executor(tmp_path):
    cfg = load_config(None, [f"output={tmp_path}", "steps=[download]"])
    out = Output.of(tmp_path)
    report = node_report("127.0.0.1", out.url, "no-token", {})
    assert report["address"] == "127.0.0.1" and "not the folder the driver writes" in report["output"]
    assert set(report["versions"]) == {"regionset", "torch", "faiss", "onnxruntime", "open_clip", "ultralytics"}
    [check] = probe_workers(cfg, out, LocalExecutor(show_progress=False))
    assert check.status == "ok"
    assert not list((tmp_path / "_state").glob(".probe-*"))  # the probe cleans up after itself


class FakeShadowedExecutor(LocalExecutor):
    """The local executor whose one 'node' reports another regionset (a module shadowed on that host)."""

    name = "fake-cluster"

    def on_every_node(self, fn, args, timeout):
        toward, [report] = super().on_every_node(fn, args, timeout)
        shadowed = copy.deepcopy(report)
        shadowed["address"] = "10.9.9.9"
        shadowed["versions"]["regionset"] = "0.0.9+shadowshadow"
        return toward, [shadowed]


def test_probe_workers_raises_a_preflight_error_naming_node_and_key(tmp_path):
    cfg = load_config(None, [f"output={tmp_path}", "steps=[download]"])
    with pytest.raises(PreflightError, match=r"node 10\.9\.9\.9 .*regionset 0\.0\.9\+shadowshadow"):
        probe_workers(cfg, Output.of(tmp_path), FakeShadowedExecutor(show_progress=False))


class FakeFlakyExecutor(LocalExecutor):
    """The local executor whose probe call fails ``fails`` times first, as a lost Ray worker does."""

    name = "fake-cluster"

    def __init__(self, fails):
        super().__init__(show_progress=False)
        self.fails, self.calls = fails, 0

    def on_every_node(self, fn, args, timeout):
        self.calls += 1
        if self.calls <= self.fails:
            raise RuntimeError("ray::call_in_worker() (pid=1, ip=10.0.0.2)\nWorkerCrashedError: the worker died")
        return super().on_every_node(fn, args, timeout)


def test_a_node_lost_once_is_retried_and_one_that_always_fails_names_its_error(tmp_path):
    cfg = load_config(None, [f"output={tmp_path}", "steps=[download]"])
    assert probe_workers(cfg, Output.of(tmp_path), FakeFlakyExecutor(fails=1))[0].status == "ok"
    with pytest.raises(PreflightError, match=r"failed 2 times \(WorkerCrashedError: the worker died\)") as e:
        probe_workers(cfg, Output.of(tmp_path), FakeFlakyExecutor(fails=99))
    assert e.value.check.key == "executor"
