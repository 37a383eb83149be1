"""Region crop embeddings with open_clip: crops in, L2-normalised float32 vectors out.

The model is an open_clip config name plus a pretrained tag or a local checkpoint path
(``models.registry.resolve_clip``). ``pretrained: none`` builds random weights: allowed for smoke
tests and the offline demo only, with a loud warning. On CUDA the encoder runs under fp16 autocast;
on CPU it runs in fp32 without autocast (bf16 autocast was measured ~4-5x *slower* on CPUs without
bf16 units), with ``torch.set_num_threads`` applied when ``threads`` > 0.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np

from models.registry import TINY_CLIP, ModelUnavailable, pick_device, register_clip_configs, resolve_clip

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
        workers: crop-preprocessing threads (0: up to 8 on CUDA, 2 on CPU; 1: inline).
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
                    model, pretrained=resolved.pretrained, device=self.device, image_resize_mode=resize_mode)
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
            workers = min(8 if on_cuda else 2, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="clip-prep") if workers > 1 else None

    def encode(self, crops: Sequence, batch_size: int = 64) -> np.ndarray:
        """Embed PIL crops; returns float32 ``len(crops) x dim``, each row L2-normalised.

        Crops are preprocessed by ``workers`` threads (PIL and torch release the GIL), and the next
        batch is preprocessed while the current one is encoded.
        """
        if not crops:
            return np.zeros((0, self.dim), np.float32)
        starts = range(0, len(crops), batch_size)
        out = []
        if self._pool is None:
            for i in starts:
                out.append(self.encode_tensor(np.stack([self._prep(c) for c in crops[i:i + batch_size]])))
            return np.concatenate(out)
        futures = [self._pool.submit(self._prep, c) for c in crops[:batch_size]]
        for i in starts:
            batch = np.stack([f.result() for f in futures])
            nxt = crops[i + batch_size:i + 2 * batch_size]
            futures = [self._pool.submit(self._prep, c) for c in nxt]
            out.append(self.encode_tensor(batch))
        return np.concatenate(out)

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
