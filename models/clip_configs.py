"""open_clip model configs read straight from their JSON files, without importing open_clip.

Importing open_clip costs seconds of CPU (torch, torchvision, transformers); a build driver only
needs a model's embedding width (preflight, lineage, output schemas), so it reads the config file:
regionset's own (``models/configs``) first, then the ones bundled with open_clip. Names open_clip
resolves itself (``rice:<folder>``, ``hf-hub:...``, paths) return None: the caller imports open_clip.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any


def clip_config_file(model: str, config_dir: Path) -> dict[str, Any] | None:
    """The config of a plain open_clip model name as open_clip registers it, or None.

    Args:
        model: an open_clip model name (e.g. ``ViT-B-32``).
        config_dir: regionset's own config folder, searched first (as registered with open_clip).
    """
    if "/" in model or ":" in model:
        return None
    spec = importlib.util.find_spec("open_clip")
    bundled = [Path(p) / "model_configs" for p in (spec.submodule_search_locations or [])] if spec else []
    for root in (config_dir, *bundled):
        path = root / f"{model}.json"
        if path.is_file():
            cfg = json.loads(path.read_text())
            if all(k in cfg for k in ("embed_dim", "vision_cfg", "text_cfg")):  # what open_clip registers
                return cfg
    return None
