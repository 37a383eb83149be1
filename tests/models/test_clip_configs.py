"""open_clip configs read from their files: the same widths as open_clip's, without importing it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from regionset.models.clip_configs import clip_config_file
from regionset.models.clip_registry import CONFIG_DIR, clip_embed_dim, register_clip_configs

ROOT = Path(__file__).resolve().parents[2]


def test_clip_width_is_read_without_importing_open_clip():
    """A build driver resolves the embed model (preflight, lineage) without torch's import seconds."""
    code = ("import sys; from regionset.models.clip_registry import TINY_CLIP, clip_embed_dim, resolve_clip; "
            "resolve_clip(TINY_CLIP, 'none'); resolve_clip('ViT-B-32', 'none'); "
            "print(clip_embed_dim('ViT-B-32'), 'open_clip' in sys.modules, 'torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["512", "False", "False"]


def test_config_files_give_open_clips_own_configs():
    import open_clip

    register_clip_configs()
    names = open_clip.list_models()
    assert {m: clip_config_file(m, CONFIG_DIR) for m in names} == {m: open_clip.get_model_config(m) for m in names}
    assert {m: clip_embed_dim(m) for m in names} == {m: open_clip.get_model_config(m)["embed_dim"] for m in names}
    assert clip_config_file("rice:/some/export", CONFIG_DIR) is None and clip_config_file("NoSuchModel", CONFIG_DIR) is None
