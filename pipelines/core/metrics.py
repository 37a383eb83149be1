"""Live build metrics in the Prometheus text format, on an HTTP endpoint of the driver (``metrics.port``).

``BuildMetrics`` is an executor watcher (``Executor.watchers``): the driver tells it each stage's plan
and every marker as it comes back, so the figures are the markers' own (the same the build summary
adds up). ``MetricsServer`` serves ``GET /metrics`` from a daemon thread on ``metrics.host`` and is
closed when the build ends, however it ends. Names, labels and their meaning: docs/operations.md
"Live metrics". Memory is read from ``/proc`` (Linux): the driver and every process under it; GPU
memory where a reader sees a GPU (``core/gpu_memory.py``). Queue depths: per shard stage the shards
handed to the executor and not back yet (``pending``: queued or running inside the engine, which
the driver cannot tell apart) and those of stages not started yet (``waiting``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from regionset.common.typed_config import ConfigError
from regionset.pipelines.core.eta import window_rate
from regionset.pipelines.core.gpu_memory import GpuMemory
from regionset.pipelines.core.processes import process_memory, process_tree

PREFIX = "regionset_"
RATE_WINDOW_S = 60.0


@dataclass(frozen=True)
class MetricsConfig:
    """The driver's metrics endpoint (local builds; docs/operations.md "Live metrics").

    Args:
        port: TCP port of ``GET /metrics`` (Prometheus text format); 0 = off.
        host: address to bind; the default answers on this machine only.
    """

    port: int = 0
    host: str = "127.0.0.1"

    def check(self) -> None:
        """Raise ConfigError naming the key for a setting that cannot work."""
        if not 0 <= self.port <= 65535:
            raise ConfigError("metrics.port: must be 0 (off) or a TCP port 1-65535")


class BuildMetrics:
    """What the endpoint reports, fed by the driver: per stage shards planned/skipped/done/failed,
    rows in/out, bytes written, counters by kind and reason (statuses, drops, errors, retries), the
    rows/s of the last minute, queue depths, global steps running and their seconds, memory.

    Args:
        sizes: ``marker -> bytes`` of the shard it committed (0 when unknown, e.g. on object stores).
        clock: the clock for rates (``time.monotonic``; a fake in tests).
        memory: reads per-process memory (``process_memory``; a fake in tests).
        stages: the build's shard stages, in run order (for the ``waiting`` queue).
        shards: the build's shard count.
        gpu: reads GPU memory (``GpuMemory()``; a fake in tests).
        tree: the driver's process tree, pid -> name (``process_tree``; a fake in tests).
    """

    def __init__(self, sizes: Any = None, clock: Any = time.monotonic, memory: Any = process_memory,
                 stages: list[str] | None = None, shards: int = 0, gpu: Any = None, tree: Any = process_tree) -> None:
        self.sizes, self.clock, self.memory = sizes, clock, memory
        self.stages, self.shards = list(stages or []), shards
        self.gpu = gpu if gpu is not None else GpuMemory()
        self.tree = tree
        self.step_start: dict[str, float] = {}
        self.step_seconds: dict[str, float] = {}
        self.lock = threading.Lock()
        self._planned: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.done: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.rows_in: Counter[str] = Counter()
        self.rows_out: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        self.counters: dict[str, Counter[str]] = defaultdict(Counter)
        self.times: dict[str, list[tuple[float, int, int]]] = defaultdict(list)  # (t, rows in, rows out)
        self.started = self.clock()

    def planned(self, stage: str, todo: int, skipped: int) -> None:
        """``stage`` starts: ``todo`` shards to run, ``skipped`` already complete."""
        with self.lock:
            self._planned[stage] += todo
            self.skipped[stage] += skipped

    def shard_done(self, marker: Any) -> None:
        """One marker came back."""
        nbytes = self.sizes(marker) if self.sizes is not None else 0
        with self.lock:
            s = marker.stage
            self.done[s] += 1
            self.rows_in[s] += marker.rows_in
            self.rows_out[s] += marker.rows_out
            self.bytes[s] += nbytes
            self.counters[s].update({k: v for k, v in marker.counters.items() if ":" in k})
            self.times[s].append((self.clock(), marker.rows_in, marker.rows_out))

    def step_started(self, step: str) -> None:
        """Global step ``step`` starts now."""
        with self.lock:
            self.step_start[step] = self.clock()

    def step_done(self, step: str, seconds: float = 0.0) -> None:
        """Global step ``step`` finished after ``seconds`` (default: measured here)."""
        with self.lock:
            start = self.step_start.pop(step, None)
            self.step_seconds[step] = seconds or (self.clock() - start if start is not None else 0.0)

    def queues(self) -> list[tuple[dict[str, str], float]]:
        """Shards ``pending`` (planned, not back yet) per started stage, ``waiting`` per stage not started."""
        got = []
        for s in dict.fromkeys([*self.stages, *self._planned]):
            if s in self._planned:
                left = 0 if self.failed[s] else max(self._planned[s] - self.done[s], 0)
                got += [({"stage": s, "state": "pending"}, float(left)), ({"stage": s, "state": "waiting"}, 0.0)]
            else:
                got += [({"stage": s, "state": "pending"}, 0.0), ({"stage": s, "state": "waiting"}, float(self.shards))]
        return got

    def stage_failed(self, stage: str) -> None:
        """A stage raised (a shard failed past its retries)."""
        with self.lock:
            self.failed[stage] += 1

    def _rates(self, stage: str, now: float) -> tuple[float, float]:
        pts = self.times[stage]
        recent = [p for p in pts if p[0] > now - RATE_WINDOW_S]
        span = min(RATE_WINDOW_S, now - self.started)
        if not recent or span <= 0:
            return 0.0, 0.0
        return sum(p[1] for p in recent) / span, sum(p[2] for p in recent) / span

    def render(self) -> str:
        """The Prometheus text exposition of everything above, now."""
        now = self.clock()
        lines: list[str] = []

        def family(name: str, kind: str, help_: str, samples: list[tuple[dict[str, str], float]]) -> None:
            lines.append(f"# HELP {PREFIX}{name} {help_}")
            lines.append(f"# TYPE {PREFIX}{name} {kind}")
            for labels, value in samples:
                lab = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
                lines.append(f"{PREFIX}{name}{{{lab}}} {value:g}" if lab else f"{PREFIX}{name} {value:g}")

        with self.lock:
            stages = sorted(set(self._planned) | set(self.done))
            per = lambda c: [({"stage": s}, float(c[s])) for s in stages]  # noqa: E731
            family("shards_planned_total", "counter", "Shards each stage had to run in this build.", per(self._planned))
            family("shards_skipped_total", "counter", "Shards already complete (skipped).", per(self.skipped))
            family("shards_done_total", "counter", "Shards finished (marker written).", per(self.done))
            family("shards_failed_total", "counter", "Stage runs that failed (a shard past its retries).",
                   per(self.failed))
            family("rows_in_total", "counter", "Input rows of the finished shards.", per(self.rows_in))
            family("rows_out_total", "counter", "Output rows of the finished shards.", per(self.rows_out))
            family("bytes_written_total", "counter", "Bytes of the shards written (local outputs).", per(self.bytes))
            family("events_total", "counter", "Per-row counters of the finished shards by kind and reason "
                   "(status, drop, skip, error, retry, ...).",
                   [({"stage": s, "kind": k.split(":", 1)[0], "reason": k.split(":", 1)[1]}, float(v))
                    for s in stages for k, v in sorted(self.counters[s].items())])
            rates = {s: self._rates(s, now) for s in stages}
            family("rows_in_per_second", "gauge", f"Input rows/s over the last {RATE_WINDOW_S:.0f} s.",
                   [({"stage": s}, rates[s][0]) for s in stages])
            family("rows_out_per_second", "gauge", f"Output rows/s over the last {RATE_WINDOW_S:.0f} s.",
                   [({"stage": s}, rates[s][1]) for s in stages])
            family("shards_per_second", "gauge", f"Shards/s over the last {RATE_WINDOW_S:.0f} s.",
                   [({"stage": s}, window_rate([p[0] for p in self.times[s]], now, self.started, RATE_WINDOW_S))
                    for s in stages])
            family("shards_queued", "gauge", "Shards per stage: pending = handed to the executor, not back yet "
                   "(queued or running); waiting = the stage has not started.", self.queues())
            steps = sorted(set(self.step_start) | set(self.step_seconds))
            family("step_running", "gauge", "1 while the global step runs.",
                   [({"step": s}, float(s in self.step_start)) for s in steps])
            family("step_seconds", "gauge", "Seconds the global step ran (so far, while it runs).",
                   [({"step": s}, now - self.step_start[s] if s in self.step_start else self.step_seconds[s])
                    for s in steps])
        family("process_resident_bytes", "gauge", "Resident memory of the driver and each worker process.",
               [({"process": k}, float(v)) for k, v in sorted(self.memory().items())])
        gpus = self.gpu.read(self.tree())
        family("gpu_devices", "gauge", "GPUs the driver sees (0: no GPU; then no GPU memory samples).",
               [({}, float(self.gpu.devices()))])
        lab = lambda g: {"process": g.process, "device": g.device, "source": g.source}  # noqa: E731
        family("gpu_memory_bytes", "gauge", "GPU memory in use per process and device (source torch: the "
               "driver's allocator; nvml: what the GPU driver reports per process).",
               [(lab(g), g.used) for g in gpus])
        family("gpu_memory_peak_bytes", "gauge", "Peak GPU memory per process and device (torch: the "
               "allocator's peak; nvml: the highest seen by this endpoint).", [(lab(g), g.peak) for g in gpus])
        family("up_seconds", "gauge", "Seconds since the build's metrics started.", [({}, now - self.started)])
        return "\n".join(lines) + "\n"


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class MetricsServer:
    """``GET /metrics`` on ``host:port`` from a daemon thread; a context manager that closes it.

    Args:
        metrics: what to serve.
        port: TCP port (0 here picks a free one; ``metrics.port`` 0 means no server at all).
        host: address to bind.
    """

    def __init__(self, metrics: BuildMetrics, port: int, host: str = "127.0.0.1") -> None:
        handler = _handler(metrics)
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as err:
            raise ConfigError(f"metrics.port: cannot listen on {host}:{port}: {err.strerror or err}") from None
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="regionset-metrics", daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving and free the port (waits at most 5 s for the thread)."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler(metrics: BuildMetrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            body = metrics.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:  # scrapes are not build output
            pass

    return Handler
