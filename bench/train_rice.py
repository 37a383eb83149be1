"""RICE training benchmarks: loader vs step throughput, Partial FC vs dense, loss forms, and a GPU step.

    python bench/train_rice.py                 # CPU: loader vs step, Partial FC vs dense at K=100k
    python bench/train_rice.py --only-forms --forms --probe-steps 150   # loss forms + learning probe
    python bench/train_rice.py --device cuda   # + ViT-B/16 224, batch 256, bf16, K=1M, rho=0.1
    python bench/train_rice.py --device cuda --skip-cpu   # the GPU step only
    python bench/train_rice.py --step --skip-cpu --step-sizes tiny,4,1000   # that step's code, on CPU (smoke)

Every number is the median of ``--repeats`` runs. The CPU part uses synthetic train shards
(regionset.training.synthetic) with the pipeline's schema; the GPU part uses random tensors of the same shapes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from rice_forms import learning_probe, loss_forms  # bench/ is the script's folder

from regionset.training.data import ShardStream, StreamLoader
from regionset.training.rice.loss import PartialFCLoss
from regionset.training.rice.model import ModelConfig, vit_shape
from regionset.training.rice.regions import RegionTransform, collate_regions
from regionset.training.rice.task import LossConfig, RiceTask
from regionset.training.synthetic import write_synthetic_shards


def _median(fn, repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def loader_vs_step(repeats: int, batch: int, workers: int, model: str) -> list[tuple[str, float]]:
    """Samples/s of the shard loader alone and of the training step alone (tiny model, CPU)."""
    shape = vit_shape(ModelConfig(name=model))
    out = tempfile.mkdtemp(prefix="bench-rice-")
    write_synthetic_shards(out, num_shards=4, rows_per_shard=64, size=shape["image_size"] * 2)
    transform = RegionTransform(shape["image_size"], shape["patch_size"], 10, 10, 10)

    def loader_rate() -> float:
        stream = ShardStream(out, transform, collate_regions, batch, epochs=1)
        n, t = 0, time.perf_counter()
        for b in StreamLoader(stream, num_workers=workers):
            n += b["image"].shape[0]
        return n / (time.perf_counter() - t)

    task = RiceTask(ModelConfig(name=model), LossConfig(num_classes=12, num_tokens=49408))
    opt = torch.optim.AdamW(task.param_groups(0.2), lr=1e-3)
    fixed = next(iter(StreamLoader(ShardStream(out, transform, collate_regions, batch, epochs=1), 0)))

    def step_rate(steps: int = 5) -> float:
        t = time.perf_counter()
        for _ in range(steps):
            task.training_forward(fixed)["loss"].backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return steps * batch / (time.perf_counter() - t)

    step_rate(1)
    lr, sr = _median(loader_rate, repeats), _median(step_rate, repeats)
    return [(f"loader samples/s ({workers} workers)", lr), (f"step samples/s ({model}, batch {batch})", sr),
            ("loader / step", lr / sr)]


def partial_fc_vs_dense(repeats: int, k: int, rows: int, dim: int, device: str) -> list[tuple[str, float]]:
    """Forward+backward time of the loss at K centres: ρ = 0.1 vs ρ = 1 (dense)."""
    feats = torch.randn(rows, dim, device=device, requires_grad=True)
    labels = torch.randint(0, k, (rows, 1), device=device)
    out = []
    for rho in (0.1, 1.0):
        loss_fn = PartialFCLoss(k, dim, sample_rate=rho).to(device)

        def run(loss_fn: PartialFCLoss = loss_fn) -> float:
            if device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            loss_fn(feats, labels).mean()[0].backward()
            if device == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - t

        run()
        out.append((f"loss step ms, K={k}, rho={rho}", 1000 * _median(run, repeats)))
    out.append(("dense / partial FC", out[1][1] / out[0][1]))
    return out


def gpu_step(repeats: int, batch: int, k: int, rho: float, model: str,
             device: str = "cuda") -> list[tuple[str, float]]:
    """ViT step with bf16 autocast: samples/s and (CUDA) peak memory, on random inputs.

    Args:
        device: ``cuda`` for the measurement; ``cpu`` runs the same code as a smoke test.
    """
    cuda = device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    shape = vit_shape(ModelConfig(name=model))
    s, t, n = shape["image_size"], (shape["image_size"] // shape["patch_size"]) ** 2, 10
    task = RiceTask(ModelConfig(name=model), LossConfig(num_classes=k, sample_rate=rho)).to(device)
    opt = torch.optim.AdamW(task.param_groups(0.2), lr=1e-3, fused=cuda)
    mask = torch.rand(batch, n, t, device=device) > 0.7
    mask[..., 0] = True
    b = {"image": torch.randn(batch, 3, s, s, device=device), "token_mask": mask,
         "region_valid": torch.ones(batch, n, dtype=torch.bool, device=device),
         "is_text": torch.rand(batch, n, device=device) < 0.2,
         "class_ids": torch.randint(0, k, (batch, n), device=device),
         "token_ids": torch.randint(0, 49408, (batch, n, 10), device=device),
         "image_class_ids": torch.randint(0, k, (batch, 10), device=device)}

    def run(steps: int = 5) -> float:
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            with torch.autocast(device, dtype=torch.bfloat16):
                loss = task.training_forward(b)["loss"]
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        sync()
        return steps * batch / (time.perf_counter() - t0)

    run(2)
    if not cuda:
        return [(f"{device} step samples/s ({model}, batch {batch}, K={k}, rho={rho}, bf16)", _median(run, repeats))]
    torch.cuda.reset_peak_memory_stats()
    rate = _median(run, repeats)
    return [(f"GPU step samples/s ({model}, batch {batch}, K={k}, rho={rho}, bf16)", rate),
            ("peak GPU memory GiB", torch.cuda.max_memory_allocated() / 2**30)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", default="tiny")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--k", type=int, default=100_000)
    p.add_argument("--skip-cpu", action="store_true", help="only the GPU step (with --device cuda)")
    p.add_argument("--forms", action="store_true", help="loss step rows/s and peak memory of every loss form")
    p.add_argument("--probe-steps", type=int, default=0, help="learning probe, paper vs softmax (0: skip)")
    p.add_argument("--only-forms", action="store_true", help="skip the loader/step and dense comparisons")
    p.add_argument("--step", action="store_true", help="run the GPU step on --device even if cpu (smoke test)")
    p.add_argument("--step-sizes", default="B-16,256,1000000", help="model,batch,K of the GPU step")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.skip_cpu = args.skip_cpu or args.only_forms
    rows = [] if args.skip_cpu else loader_vs_step(args.repeats, args.batch, args.workers, args.model)
    rows += [] if args.skip_cpu else partial_fc_vs_dense(args.repeats, args.k, rows=args.batch * 11, dim=vit_shape(ModelConfig(args.model))[
        "output_dim"], device="cpu")
    dim = vit_shape(ModelConfig(args.model))["output_dim"]
    rows += loss_forms(args.k, args.batch * 11, dim, args.repeats, args.threads) if args.forms else []
    rows += learning_probe(args.probe_steps, 16) if args.probe_steps else []
    if args.device == "cuda" or args.step:
        model, batch, k = args.step_sizes.split(",")
        rows += gpu_step(args.repeats, int(batch), int(k), 0.1, model, args.device)
    width = max(len(name) for name, _ in rows)
    print(f"{'measure'.ljust(width)} | value")
    print(f"{'-' * width}-|------")
    for name, value in rows:
        print(f"{name.ljust(width)} | {value:,.2f}")


if __name__ == "__main__":
    main()
