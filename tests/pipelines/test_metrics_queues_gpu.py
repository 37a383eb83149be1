"""The metrics endpoint's queue depths, global-step gauges and GPU memory (fakes stand in for a GPU)."""

from __future__ import annotations

import urllib.request
from types import SimpleNamespace

import pytest

from regionset.pipelines.build import build
from regionset.pipelines.core.gpu_memory import GpuMemory, NvmlReader, torch_samples
from regionset.pipelines.core.metrics import BuildMetrics
from regionset.pipelines.executors.local import LocalExecutor
from tests.conftest import make_jpeg
from tests.helpers import download_only, write_urls
from tests.pipelines.clusters import free_port
from tests.pipelines.test_metrics import parse


class FakeNvml:
    """Stands in for ``pynvml``: two GPUs; pids 11 and 12 hold memory on GPU 0, pid 99 (not ours) on GPU 1."""

    def __init__(self, used: dict[int, int] | None = None, fail: bool = False) -> None:
        self.used, self.fail = used if used is not None else {11: 300, 12: 500}, fail

    def nvmlInit(self):  # noqa: N802 - pynvml's names
        if self.fail:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlDeviceGetCount(self):  # noqa: N802
        return 2

    def nvmlDeviceGetHandleByIndex(self, i):  # noqa: N802
        return i

    def nvmlDeviceGetComputeRunningProcesses(self, handle):  # noqa: N802
        if handle == 0:
            return [SimpleNamespace(pid=p, usedGpuMemory=b) for p, b in self.used.items()]
        return [SimpleNamespace(pid=99, usedGpuMemory=7)]


class FakeCuda:
    """Stands in for ``torch.cuda`` on one initialised GPU."""

    def is_available(self):
        return True

    def is_initialized(self):
        return True

    def device_count(self):
        return 1

    def memory_allocated(self, i):
        return 1000

    def max_memory_allocated(self, i):
        return 4000


class FakeGpu:
    """A GPU reader that sees no GPU, as on a CPU-only machine."""

    def devices(self):
        return 0

    def read(self, processes):
        return []


def test_queue_depths_and_global_step_gauges():
    now = [0.0]
    m = BuildMetrics(clock=lambda: now[0], memory=dict, stages=["download", "embed"], shards=4, gpu=FakeGpu(),
                     tree=dict)
    m.planned("download", 3, 1)
    m.shard_done(SimpleNamespace(stage="download", rows_in=5, rows_out=5, counters={}))
    got = parse(m.render())
    q = lambda s, st: got[("regionset_shards_queued", (("stage", s), ("state", st)))]  # noqa: E731
    assert (q("download", "pending"), q("download", "waiting")) == (2, 0)
    assert (q("embed", "pending"), q("embed", "waiting")) == (0, 4)
    m.step_started("fit_kmeans")
    now[0] = 12.0
    got = parse(m.render())
    assert got[("regionset_step_running", (("step", "fit_kmeans"),))] == 1
    assert got[("regionset_step_seconds", (("step", "fit_kmeans"),))] == 12.0
    m.step_done("fit_kmeans", 11.5)
    m.stage_failed("download")
    got = parse(m.render())
    assert got[("regionset_step_running", (("step", "fit_kmeans"),))] == 0
    assert got[("regionset_step_seconds", (("step", "fit_kmeans"),))] == 11.5
    assert got[("regionset_shards_queued", (("stage", "download"), ("state", "pending")))] == 0  # it raised
    assert got[("regionset_gpu_devices", ())] == 0
    assert not [k for k in got if k[0].startswith("regionset_gpu_memory")]  # CPU: no GPU samples, no error


def test_gpu_memory_per_process_with_fake_nvml_and_torch():
    nvml = FakeNvml()
    gpu = GpuMemory(nvml=NvmlReader(nvml), torch=SimpleNamespace(cuda=FakeCuda()))
    assert gpu.devices() == 2
    tree = {10: "driver", 11: "worker-11", 12: "worker-12"}
    got = {(s.process, s.device, s.source): (s.used, s.peak) for s in gpu.read(tree)}
    assert got == {("driver", "cuda:0", "torch"): (1000.0, 4000.0), ("worker-11", "cuda:0", "nvml"): (300.0, 300.0),
                   ("worker-12", "cuda:0", "nvml"): (500.0, 500.0)}  # pid 99 is not under the driver
    nvml.used = {11: 100}
    got = {(s.process, s.source): (s.used, s.peak) for s in gpu.read(tree)}
    assert got[("worker-11", "nvml")] == (100.0, 300.0)  # peak: the highest seen
    m = BuildMetrics(memory=dict, gpu=gpu, tree=lambda: tree)
    text = parse(m.render())
    lab = (("process", "worker-11"), ("device", "cuda:0"), ("source", "nvml"))
    assert text[("regionset_gpu_memory_bytes", lab)] == 100 and text[("regionset_gpu_memory_peak_bytes", lab)] == 300
    assert text[("regionset_gpu_devices", ())] == 2


def test_no_gpu_readers_give_nothing_and_never_raise():
    reader = NvmlReader(FakeNvml(fail=True))
    assert reader.devices() == 0 and reader.used({1: "driver"}) == [] and reader.off
    assert torch_samples(SimpleNamespace()) == []  # no torch.cuda at all
    assert GpuMemory(nvml=reader, torch=SimpleNamespace()).read({1: "driver"}) == []
    assert GpuMemory().devices() >= 0  # this machine, whatever it has


class StepScraper:
    """A watcher that scrapes the endpoint when a global step ends (after the build's own watchers)."""

    def __init__(self, port: int) -> None:
        self.url, self.scrapes, self.events = f"http://127.0.0.1:{port}/metrics", [], []

    def planned(self, stage, todo, skipped):
        pass

    def shard_done(self, marker):
        pass

    def step_started(self, step):
        self.events.append(("started", step))

    def step_done(self, step, seconds):
        self.events.append(("done", step))
        with urllib.request.urlopen(self.url, timeout=5) as r:
            self.scrapes.append(parse(r.read().decode()))


def test_build_reports_global_steps_and_empty_queues(server, tmp_path):
    urls = [server.add(f"q{i}.jpg", make_jpeg(90 + 4 * i, 70)) for i in range(4)]
    port = free_port()
    cfg = download_only(tmp_path / "out", write_urls(tmp_path, urls), shard_size=2,
                        extra=["steps=[download,dedup,group_duplicates]", f"metrics.port={port}"])
    ex = LocalExecutor(1, show_progress=False)
    scraper = StepScraper(port)
    ex.watchers.append(scraper)
    with ex:
        result = build(cfg, executor=ex)
    assert scraper.events == [("started", "group_duplicates"), ("done", "group_duplicates")]
    got = scraper.scrapes[-1]
    assert got[("regionset_step_running", (("step", "group_duplicates"),))] == 0
    assert got[("regionset_step_seconds", (("step", "group_duplicates"),))] == pytest.approx(
        result.globals["group_duplicates"]["seconds"])
    for stage in ("download", "dedup"):
        assert got[("regionset_shards_queued", (("stage", stage), ("state", "pending")))] == 0
        assert got[("regionset_shards_queued", (("stage", stage), ("state", "waiting")))] == 0
