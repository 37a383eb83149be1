"""Region crop embeddings with open_clip: crops in, L2-normalised float32 vectors out.

The model is an open_clip config name plus a pretrained tag or a local checkpoint path
(``regionset.models.registry.resolve_clip``). ``pretrained: none`` builds random weights: allowed for smoke
tests and the offline demo only, with a loud warning. On CUDA the encoder runs under fp16 autocast;
on CPU it runs in fp32 without autocast (bf16 autocast was measured ~4-5x *slower* on CPUs without
bf16 units), with ``torch.set_num_threads`` applied when ``threads`` > 0.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np

from regionset.common import threads as worker_threads
from regionset.models.clip_registry import TINY_CLIP, register_clip_configs, resolve_clip
from regionset.models.registry import ModelUnavailable, pick_device

ResizeMode = Literal["squash", "shortest", "longest"]


def random_weights_warning(model: str) -> str:
    """The warning text for an embedder built without pretrained weights."""
    return (f"embed: open_clip model {model!r} has RANDOM weights (embed.pretrained=none): the embeddings "
            f"carry no semantics and k-means clusters over them are meaningless for training. Set "
            f"embed.pretrained to a tag (e.g. laion2b_s34b_b79k) or a local checkpoint path for real data.")


class ClipEmbedder:
    """Encode RGB crops (PIL images) with an open_clip image tower.

    Args:
        model: open_clip config name (e.g. ``regionset-tiny-vit``, ``ViT-B-32``).
        pretrained: a tag, a local checkpoint path, or ``none`` (random weights, warned loudly).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``auto`` (fp16 autocast on CUDA, fp32 on CPU), ``fp32``, ``fp16`` or ``bf16`` (autocast).
        resize_mode: how a crop is fitted to the square input: ``squash`` (whole region, aspect
            distorted), ``shortest`` (open_clip's default: resize + centre crop) or ``longest`` (pad).
        threads: ``torch.set_num_threads`` on CPU when > 0.
        seed: seed of the random init (matters only for ``pretrained: none``).
        workers: crop-preprocessing threads (0: up to 8 on CUDA, on CPU up to 2 within the worker's
            thread budget, ``regionset.common.threads.current()``; 1: inline).
    """

    def __init__(self, model: str = TINY_CLIP, pretrained: str = "none", device: str = "auto",
                 precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto",
                 resize_mode: ResizeMode = "squash", threads: int = 0, seed: int = 0, workers: int = 0) -> None:
        import open_clip
        import torch

        register_clip_configs()
        resolved = resolve_clip(model, pretrained)
        self.model_id = resolved.model_id
        self.random_weights = resolved.pretrained is None
        self.device = pick_device(device)
        if threads > 0:
            torch.set_num_threads(threads)
        if self.random_weights:
            print(f"WARNING: {random_weights_warning(model)}", file=sys.stderr)
        try:
            # Random init is seeded, so that every worker and every re-run builds the same model.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                net, _, preprocess = open_clip.create_model_and_transforms(
                    resolved.model, pretrained=resolved.pretrained, device=self.device, image_resize_mode=resize_mode)
        except RuntimeError as e:
            raise ModelUnavailable(f"embed.pretrained={pretrained!r}: {e}") from e
        net.eval()
        self.net = net
        self.preprocess = preprocess
        self.dim = int(net.visual.output_dim)
        on_cuda = self.device.startswith("cuda")
        if precision == "auto":
            precision = "fp16" if on_cuda else "fp32"
        self.autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
        self.precision = precision
        if workers == 0:
            workers = min(8, worker_threads.machine_cpus()) if on_cuda else min(2, worker_threads.current())
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="clip-prep") if workers > 1 else None

    def encode(self, crops: Sequence, batch_size: int = 64) -> np.ndarray:
        """Embed PIL crops; returns float32 ``len(crops) x dim``, each row L2-normalised."""
        out = list(self.encode_iter(crops, batch_size))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def encode_iter(self, crops: Iterable, batch_size: int = 64) -> Iterator[np.ndarray]:
        """Embed a stream of PIL crops, yielding one float32 array per batch, in order.

        Each crop is handed to the preprocessing threads as soon as it arrives (PIL and torch
        release the GIL), up to two batches ahead of the encoder: preprocessing overlaps with
        whatever produces the crops (decoding, cropping) and with the encoding of the batch before.
        """
        pending: deque = deque()
        for crop in crops:
            pending.append(self._pool.submit(self._prep, crop) if self._pool is not None else crop)
            if len(pending) >= 2 * batch_size:
                yield self._encode_pending(pending, batch_size)
        while pending:
            yield self._encode_pending(pending, batch_size)

    def _encode_pending(self, pending: deque, n: int) -> np.ndarray:
        items = [pending.popleft() for _ in range(min(n, len(pending)))]
        if self._pool is None:
            return self.encode_tensor(np.stack([self._prep(c) for c in items]))
        return self.encode_tensor(np.stack([f.result() for f in items]))

    def _prep(self, crop) -> np.ndarray:
        return self.preprocess(crop).numpy()

    def encode_tensor(self, pixels: np.ndarray) -> np.ndarray:
        """Embed already-preprocessed pixels (``N x 3 x S x S`` float32); L2-normalised float32 rows."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device, non_blocking=True)
        with torch.inference_mode():
            if self.autocast_dtype is not None:
                with torch.autocast(device_type=self.device.split(":")[0], dtype=self.autocast_dtype):
                    f = self.net.encode_image(x)
            else:
                f = self.net.encode_image(x)
            f = f.float()
            f = f / f.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return f.cpu().numpy()
