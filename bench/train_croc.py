"""Croc step time split: vision encoder, pool matching, LM forward, backward + optimizer step.

CPU (default): the tiny config (16 visual tokens, pool 64), then 576 visual tokens (432 masked per
image) against a pool of 2,048 with Hungarian matching serial vs in 2 threads vs nearest-neighbour,
to show the matching's share of a step. Medians over ``--runs`` repetitions of ``--steps`` steps.

    python bench/train_croc.py --runs 3 --steps 4

GPU (one prepared run): a 0.5B-class random-init LM (Qwen2-0.5B shape), CLIP ViT-L/14-336 shape
(576 visual tokens), bf16, stage 1.5 with a 2,048 pool; prints the same split, tokens/s and peak
memory. ``--layers`` shrinks the LM for a smoke run on CPU.

    python bench/train_croc.py --device cuda --batch 8 --steps 6
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from regionset.common.typed_config import load_config  # noqa: E402
from regionset.training.croc.build import build_croc, build_stream  # noqa: E402
from regionset.training.croc.config import CrocConfig  # noqa: E402
from regionset.training.synthetic import write_synthetic_shards  # noqa: E402

TINY = Path(__file__).resolve().parents[1] / "training" / "configs" / "croc-tiny.yaml"
QWEN2_05B = ("{model_type: qwen2, hidden_size: 896, intermediate_size: 4864, num_hidden_layers: %d, "
             "num_attention_heads: 14, num_key_value_heads: 2, vocab_size: 151936, max_position_embeddings: 4096, "
             "tie_word_embeddings: true}")
TOWER_576 = "{image_size: 336, patch_size: 14, width: 64, layers: 2, head_width: 32}"


def build(out: str, run: str, extra: list[str]):
    cfg = load_config(CrocConfig, str(TINY), [f"data.train_dir={out}", f"loop.out_dir={run}",
                                              "data.num_workers=0", *extra])
    task, tok = build_croc(cfg, run)
    return cfg, task, tok


def measure(task, batches: list[dict], device: torch.device, steps: int, bf16: bool) -> dict[str, float]:
    """Median seconds per part over ``steps`` steps (after one warm-up step)."""
    task.to(device).train()
    task.croc.sync_timings = True
    opt = torch.optim.AdamW(task.param_groups(0.0))
    rows = []
    for i in range(steps + 1):
        batch = {k: v.to(device) for k, v in batches[i % len(batches)].items() if torch.is_tensor(v)}
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = task.training_forward(batch)["loss"]
        sync(device)
        t1 = time.perf_counter()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        t2 = time.perf_counter()
        if i:
            rows.append({**task.timings, "bwd_opt_s": t2 - t1, "step_s": t2 - t0,
                         "tokens": batch["padding_mask"].sum().item()})
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def take(cfg, task, tok, n: int) -> list[dict]:
    it = iter(build_stream(cfg, task, tok))
    return [next(it) for _ in range(n)]


def table(results: list[tuple[str, dict]], base: str) -> None:
    ref = dict(results)[base]["step_s"]
    print(f"| config | vision ms | match ms | LM fwd ms | bwd+opt ms | step ms | match share | step / {base} |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results:
        print(f"| {name} | {r['vision_s'] * 1e3:.1f} | {r['match_s'] * 1e3:.1f} | {r['lm_fwd_s'] * 1e3:.1f} | "
              f"{r['bwd_opt_s'] * 1e3:.1f} | {r['step_s'] * 1e3:.1f} | {r['match_s'] / r['step_s']:.1%} | "
              f"{r['step_s'] / ref:.2f} |")


def matching_only(args) -> None:
    """Matching alone on realistic inputs: B images x 432 masked tokens x a 2,048 pool."""
    from regionset.training.croc.matching import PoolMatcher

    g = torch.Generator().manual_seed(0)
    tokens = torch.nn.functional.normalize(torch.randn(args.batch, 432, 896, generator=g), dim=-1)
    pool = torch.nn.functional.normalize(torch.randn(2048, 896, generator=g), dim=-1)
    rows = []
    for name, mode, threads in (("hungarian, 1 thread", "hungarian", 1), ("hungarian, 2 threads", "hungarian", 2),
                                ("nearest", "nearest", 1)):
        m = PoolMatcher(mode, threads)
        times, assign = [], []
        for _ in range(max(5, 3 * args.runs)):
            t = time.perf_counter()
            m(tokens, pool)
            times.append(time.perf_counter() - t)
            assign.append(m.stats.assign_s)
        m.close()
        rows.append((name, statistics.median(times), statistics.median(assign)))
    base = rows[0][1]
    print(f"matching only: batch {args.batch} x 432 masked x pool 2048, width 896, median of {max(5, 3 * args.runs)}")
    print("| matcher | ms per batch (cost + assignment) | of which assignment | ms per image | time / hungarian 1 thread |")
    print("|---|---|---|---|---|")
    for name, t, a in rows:
        print(f"| {name} | {t * 1e3:.1f} | {a * 1e3:.1f} | {t * 1e3 / args.batch:.1f} | {t / base:.2f} |")


def cpu(args) -> None:
    torch.set_num_threads(args.threads)
    tmp = tempfile.mkdtemp(prefix="bench-croc-")
    write_synthetic_shards(tmp, num_shards=1, rows_per_shard=64, size=336)
    variants = [
        ("tiny (16 tok, P=64)", []),
        ("576 tok, P=2048, hungarian x1 thread", [f"model.vision.tower={TOWER_576}", "method.pool_size=2048",
                                                  "method.match_threads=1", "data.max_length=640"]),
        ("576 tok, P=2048, hungarian x2 threads", [f"model.vision.tower={TOWER_576}", "method.pool_size=2048",
                                                   "method.match_threads=2", "data.max_length=640"]),
        ("576 tok, P=2048, nearest", [f"model.vision.tower={TOWER_576}", "method.pool_size=2048",
                                      "method.matching=nearest", "data.max_length=640"]),
    ]
    per_run: dict[str, list[dict]] = {name: [] for name, _ in variants}
    for r in range(args.runs):
        for name, extra in variants:
            torch.manual_seed(r)
            cfg, task, tok = build(tmp, os.path.join(tmp, "run"), extra + [f"data.batch_size={args.batch}"])
            per_run[name].append(measure(task, take(cfg, task, tok, 2), torch.device("cpu"), args.steps, False))
            task.matcher.close()
    results = [(n, {k: statistics.median(m[k] for m in runs) for k in runs[0]}) for n, runs in per_run.items()]
    print(f"CPU, {args.threads} threads, batch {args.batch}, median of {args.runs} runs x {args.steps} steps; "
          "masked per image = 0.75 x visual tokens (432 of 576)")
    table(results, variants[1][0])
    print()
    matching_only(args)


def gpu(args) -> None:
    device = torch.device(args.device)
    tmp = tempfile.mkdtemp(prefix="bench-croc-")
    write_synthetic_shards(tmp, num_shards=1, rows_per_shard=4 * args.batch, size=336)
    extra = ["model.vision.tower={}", "model.vision.name=ViT-L-14-336", "model.tokenizer.kind=bytes",
             f"model.lm.config={QWEN2_05B % args.layers}", "model.lm.dtype=bfloat16",
             "method.pool_size=2048", "method.recon_heads=14", "data.max_length=700",
             f"data.batch_size={args.batch}", "method.lr={lm: 0.00002, projector: 0.00002, pool: 0.0002, recon_head: 0.0002}"]
    torch.manual_seed(0)
    cfg, task, tok = build(tmp, os.path.join(tmp, "run"), extra)
    task.croc.to(torch.bfloat16)
    n_lm = sum(p.numel() for p in task.croc.lm.parameters()) / 1e6
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    r = measure(task, take(cfg, task, tok, 2), device, args.steps, bf16=False)
    print(f"{device}, LM {n_lm:.0f}M params (Qwen2-0.5B shape, {args.layers} layers), ViT-L/14-336 shape, "
          f"{task.croc.num_visual_tokens} visual tokens, bf16, batch {args.batch}, median of {args.steps} steps")
    table([("stage 1.5", r)], "stage 1.5")
    print(f"tokens/s: {r['tokens'] / r['step_s']:.0f}  (tokens per step {r['tokens']:.0f})")
    if device.type == "cuda":
        print(f"peak memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    task.matcher.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu: tiny + Hungarian share; cuda: the 0.5B-class run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--layers", type=int, default=24, help="LM layers of the 0.5B-class run")
    p.add_argument("--large", action="store_true", help="run the 0.5B-class config on --device (even cpu)")
    args = p.parse_args()
    if args.device.startswith("cuda") or args.large:
        gpu(args)
    else:
        cpu(args)


if __name__ == "__main__":
    main()
