"""RICE loss forms side by side: loss-step speed and peak memory at K centres, and a learning probe.

Imported by ``bench/train_rice.py`` (``--forms``, ``--probe-steps``). Speeds are measured in one
process, the forms interleaved step by step; each peak memory in a fresh spawned process, so its
peak RSS (VmHWM, reset via /proc/self/clear_refs) is its own.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import statistics
import tempfile
import time

import torch

FORMS = (("paper", "joint"), ("paper", "per_label"), ("softmax", "joint"), ("softmax", "per_label"))


def _rss_kib(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", open("/proc/self/status").read()).group(1))


def _case(form: str, multilabel: str, k: int, rows: int, dim: int, filt: float):
    """A loss module, its inputs and a timed forward+backward step (task-like label mix)."""
    from regionset.training.rice.loss import PartialFCLoss

    torch.manual_seed(0)
    loss_fn = PartialFCLoss(k, dim, sample_rate=0.1, form=form, multilabel=multilabel, labels_per_sample=8,
                            interclass_filter=filt)
    feats = torch.randn(rows, dim, requires_grad=True)
    labels = torch.full((rows, 10), -1, dtype=torch.long)  # as the task: region rows 1 label, CLS rows 10
    labels[:, 0] = torch.randint(0, k, (rows,))
    cls = torch.arange(rows) % 11 == 10
    labels[cls] = torch.randint(0, k, (int(cls.sum()), 10))

    def step() -> float:
        t = time.perf_counter()
        loss_fn(feats, labels).mean()[0].backward()
        loss_fn.weight.grad, feats.grad = None, None
        return time.perf_counter() - t

    return step


def _peak_mib(case: tuple, threads: int) -> float:
    """Peak RSS growth (MiB) of two steps of ``case`` over the process with the bank built (fresh process)."""
    torch.set_num_threads(threads)
    step = _case(*case)
    base = _rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS to the current RSS
    step(), step()
    return (_rss_kib("VmHWM") - base) / 1024


def loss_forms(k: int, rows: int, dim: int, repeats: int, threads: int) -> list[tuple[str, float]]:
    """Loss step rows/s (forms interleaved step by step, medians) and peak memory (a process each) at K."""
    cases = [(f, ml, k, rows, dim, 0.0) for f, ml in FORMS] + [("softmax", "per_label", k, rows, dim, 0.75)]
    steps = [_case(*c) for c in cases]
    for step in steps:
        step()  # warm-up
    times = [[step() for step in steps] for _ in range(repeats)]  # side by side: load hits every form alike
    out = []
    ctx = mp.get_context("spawn")
    for i, case in enumerate(cases):
        with ctx.Pool(1) as pool:
            mib = pool.apply(_peak_mib, (case, threads))
        name = f"{case[0]}/{case[1]}" + (f"/filter {case[5]}" if case[5] else "")
        rate = rows / statistics.median(t[i] for t in times)
        out += [(f"loss rows/s, K={k}, {name}", rate), (f"loss peak RSS growth MiB, {name}", mib)]
    return out


def learning_probe(steps: int, batch: int, forms: tuple[str, ...] = ("paper", "softmax")) -> list[tuple[str, float]]:
    """Region linear-probe accuracy of the nano model at steps/2 and steps, one run per form, same data.

    The settings are the slow learning test's (synthetic coloured shapes, 8 shards x 64 rows,
    ρ = 1, s = 16); only ``loss.form`` changes between the runs.
    """
    from regionset.training.checkpoint import latest_checkpoint
    from regionset.training.cli import run_training
    from regionset.training.rice.model import ModelConfig, RiceViT
    from regionset.training.rice.probe import region_probe
    from regionset.training.synthetic import NUM_CLASSES, NUM_TOKENS, write_synthetic_shards

    root = tempfile.mkdtemp(prefix="bench-rice-probe-")
    config = os.path.join(os.path.dirname(__file__), "../training/configs/rice-tiny.yaml")
    write_synthetic_shards(f"{root}/train", num_shards=8, rows_per_shard=64, size=32, seed=0)
    write_synthetic_shards(f"{root}/probe", num_shards=2, rows_per_shard=64, size=32, seed=99)
    torch.manual_seed(0)
    out = [("probe accuracy %, untrained", 100 * region_probe(RiceViT(ModelConfig(name="nano")), f"{root}/probe", NUM_CLASSES))]
    for form in forms:
        run = f"{root}/run-{form}"
        t = time.perf_counter()
        run_training("rice", config, [
            f"data.train_dir={root}/train", f"loop.out_dir={run}", f"loop.steps={steps}", "loop.log_every=10",
            "loop.warmup_steps=5", f"data.batch_size={batch}", "data.num_workers=0", "model.name=nano",
            f"loss.num_tokens={NUM_TOKENS}", "loss.sample_rate=1.0", "loss.scale=16.0", f"loss.form={form}",
            "device=cpu", "export=false", f"loop.save_every={steps // 2}", "loop.resume=false"])
        seconds = time.perf_counter() - t
        for step in (steps // 2, steps):
            model = RiceViT(ModelConfig(name="nano"))
            ckpt = os.path.join(os.path.dirname(latest_checkpoint(run)), f"step-{step:08d}", "model.pt")
            model.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
            out.append((f"probe accuracy %, {form}, step {step}", 100 * region_probe(model, f"{root}/probe", NUM_CLASSES)))
        out.append((f"train seconds, {form}, {steps} steps", seconds))
    return out
