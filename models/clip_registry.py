"""open_clip embedders and RICE exports: resolve a name, a local checkpoint or a trained RICE trunk.

Part of the model registry (``models/registry.py``, docs/region-stages.md): a name that needs a
download fails at once with ``ModelUnavailable`` naming the option that takes a local file.
Nothing here imports open_clip at module level.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from regionset.models.clip_configs import clip_config_file
from regionset.models.registry import ModelUnavailable, downloads_allowed, package_version

TINY_CLIP = "regionset-tiny-vit"
CONFIG_DIR = Path(__file__).with_name("configs")
NO_WEIGHTS = ("", "none", "None", "random")
_REGISTERED = False


def register_clip_configs() -> None:
    """Register regionset's own open_clip model configs (``models/configs/*.json``) once."""
    global _REGISTERED
    if _REGISTERED:
        return
    import open_clip

    open_clip.add_model_config(CONFIG_DIR)
    _REGISTERED = True


RICE_PREFIX = "rice:"
RICE_EXPORT_INFO = "rice.json"  # what a RICE export folder holds and how to load it (training/rice/export.py)
# open_clip's OpenAI CLIP preprocessing statistics: the default of every encoder regionset trains or embeds with.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def read_rice_export(folder: str | Path, option: str = "embed.model") -> tuple[str, str]:
    """Register a RICE export's open_clip config and return (open_clip model name, checkpoint path).

    Args:
        folder: an export folder (``loop.out_dir/export`` of a RICE run).
        option: the config option that named it, for the error message.
    """
    folder = Path(folder).expanduser()
    info_path = folder / RICE_EXPORT_INFO
    if not info_path.is_file():
        raise ModelUnavailable(f"{option}={str(folder)!r}: {info_path} not found; point it at the export folder "
                               "a RICE run writes (loop.out_dir/export)")
    info = json.loads(info_path.read_text())
    import open_clip

    open_clip.add_model_config(str(folder / info["open_clip_config"]))
    return info["open_clip_model"], str(folder / info["checkpoint"])


def rice_export(model: str) -> tuple[str, str]:
    """For ``rice:<folder>`` (a RICE trainer export): (open_clip model name, checkpoint path).

    Args:
        model: ``rice:`` followed by the export folder.
    """
    return read_rice_export(model[len(RICE_PREFIX):])


def clip_embed_dim(model: str) -> int:
    """Output width of an open_clip model, read from its config (no model is built)."""
    cfg = clip_config_file(model, CONFIG_DIR)  # no open_clip import (seconds) for a plain name
    if cfg is not None:
        return int(cfg["embed_dim"])
    register_clip_configs()
    import open_clip

    if model.startswith(RICE_PREFIX):
        model = rice_export(model)[0]
    cfg = open_clip.get_model_config(model)
    if cfg is None:
        raise ModelUnavailable(f"embed.model={model!r} is not an open_clip model config; "
                               f"e.g. {TINY_CLIP}, ViT-B-32, ViT-B-16 (open_clip.list_models())")
    return int(cfg["embed_dim"])


@dataclass(frozen=True)
class ResolvedClip:
    """An open_clip model and where its weights come from (None: random init)."""

    model: str
    pretrained: str | None
    model_id: str


def resolve_clip(model: str, pretrained: str, option: str = "embed.pretrained") -> ResolvedClip:
    """Check that ``model`` exists and that ``pretrained`` (tag, local checkpoint or none) is usable.

    A tag is usable offline only when its file is already in the local cache; otherwise this fails
    at once, naming ``option`` (which also takes a local checkpoint path).
    """
    clip_embed_dim(model)
    version = package_version("open_clip_torch")
    if model.startswith(RICE_PREFIX):  # a trained RICE trunk: its export carries config and weights
        name, checkpoint = rice_export(model)
        return ResolvedClip(name, checkpoint, f"rice-export:{Path(checkpoint).parent.name}:{name}")
    if pretrained in NO_WEIGHTS:
        return ResolvedClip(model, None, f"open_clip-{version}:{model}:none(random-init)")
    p = Path(pretrained).expanduser()
    if p.is_file():
        return ResolvedClip(model, str(p), f"open_clip-{version}:{model}:{p.name}")
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, pretrained)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model)
        raise ModelUnavailable(f"{option}={pretrained!r} is neither a file nor a pretrained tag of "
                               f"{model} (tags: {tags}); give a local checkpoint path or 'none'")
    if not downloads_allowed() and not _clip_cached(cfg):
        raise ModelUnavailable(
            f"{option}={pretrained!r} for {model} is not in the local cache and would need a download, "
            f"but regionset runs offline. Set {option}=/path/to/checkpoint.bin (a local open_clip "
            f"checkpoint), or export REGIONSET_ONLINE=1 where the hub is reachable.")
    return ResolvedClip(model, pretrained, f"open_clip-{version}:{model}:{pretrained}")


def _clip_cached(cfg: dict) -> bool:
    """Whether open_clip would find the tag's weights without the network."""
    if cfg.get("file"):
        return Path(cfg["file"]).is_file()
    hub = cfg.get("hf_hub", "")
    if hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return False
        repo, filename = os.path.split(hub)  # open_clip's own rule: "org/repo/" means the default file
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if filename.endswith((".bin", ".pth")):
            names.insert(0, filename[:-4] + ".safetensors")
        return any(isinstance(try_to_load_from_cache(repo, n), str) for n in names)
    url = cfg.get("url", "")
    return bool(url) and (Path.home() / ".cache" / "clip" / os.path.basename(url)).is_file()
