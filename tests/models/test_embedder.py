"""open_clip embedder (random weights): shape, dtype, norm, determinism, batch-size invariance.

With random weights nothing semantic can be asserted (that similar crops embed close); these tests
check the plumbing only.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from regionset.models.clip_registry import TINY_CLIP
from regionset.models.embedder import ClipEmbedder


def _crops(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h, w = int(rng.integers(20, 300)), int(rng.integers(20, 300))
        out.append(Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)))
    return out


@pytest.fixture(scope="module")
def embedder():
    return ClipEmbedder(TINY_CLIP, "none", device="cpu")


def test_random_weights_warn_loudly(capsys):
    e = ClipEmbedder(TINY_CLIP, "none", device="cpu")
    assert e.random_weights and "RANDOM weights" in capsys.readouterr().err


def test_shape_dtype_norm(embedder):
    v = embedder.encode(_crops(5))
    assert v.shape == (5, 256) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, 256)
    assert embedder.precision == "fp32" and embedder.autocast_dtype is None  # no autocast on CPU


def test_deterministic_across_builds(embedder):
    crops = _crops(4, seed=1)
    np.testing.assert_array_equal(embedder.encode(crops), embedder.encode(crops))
    # random init is seeded: a second build (another worker, a re-run) gives the same vectors
    again = ClipEmbedder(TINY_CLIP, "none", device="cpu")
    np.testing.assert_array_equal(again.encode(crops), embedder.encode(crops))


def test_batch_size_invariance(embedder):
    crops = _crops(32, seed=2)
    one = np.concatenate([embedder.encode([c], batch_size=1) for c in crops])
    full = embedder.encode(crops, batch_size=32)
    # stored as fp16: equal within fp16 resolution
    np.testing.assert_allclose(one.astype(np.float16).astype(np.float32),
                               full.astype(np.float16).astype(np.float32), atol=2e-3)
