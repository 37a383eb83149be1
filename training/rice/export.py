"""Export a trained RICE trunk so open_clip loads it, and load open_clip weights into a trunk.

``export_trunk`` writes, into one folder:
- ``visual.pt``: the trunk's ``open_clip.transformer.VisionTransformer`` state dict;
- ``RICE-<name>.json``: an open_clip model config (vision tower = the trunk);
- ``open_clip_model.pt``: a full open_clip CLIP state dict of that config. Its *text tower is
  randomly initialised* (RICE trains no text tower): use ``encode_image`` only;
- ``rice.json``: what the files are and how to load them (model name, image size, mean/std).

Loading, e.g. from the pipeline's embed stage (open_clip model name + local checkpoint)::

    open_clip.add_model_config("EXPORT/RICE-tiny.json")
    model, _, preprocess = open_clip.create_model_and_transforms("RICE-tiny",
                                                                 pretrained="EXPORT/open_clip_model.pt")
    feats = model.encode_image(preprocess(img)[None])

For ``B-16``/``L-14`` exports the config equals open_clip's ``ViT-B-16``/``ViT-L-14``, so
``create_model("ViT-B-16", pretrained="EXPORT/open_clip_model.pt")`` works without the JSON.
"""

from __future__ import annotations

import json
import os

import open_clip
import torch

from regionset.models.clip_registry import CLIP_MEAN, CLIP_STD, RICE_EXPORT_INFO, read_rice_export

_TINY_TEXT = {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1}


def load_open_clip_visual(path: str) -> dict[str, torch.Tensor]:
    """The vision-tower state dict from a local open_clip checkpoint (full CLIP or visual-only).

    Args:
        path: a ``.pt``/``.bin`` file saved by open_clip (``state_dict`` wrappers and ``module.``
            prefixes are handled). Names that need a download are not accepted here: download the
            file where the internet is reachable and set ``model.init_from`` to its path.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model.init_from={path!r} is not a local file; point it at an open_clip checkpoint")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    sd = sd.get("state_dict", sd)
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    if any(k.startswith("visual.") for k in sd):
        sd = {k.removeprefix("visual."): v for k, v in sd.items() if k.startswith("visual.")}
    return sd


def open_clip_config(model) -> tuple[str, dict]:
    """(open_clip model name, model config dict) matching a :class:`RiceViT` trunk."""
    shape, name = model.shape, model.cfg.name
    vision = {"image_size": shape["image_size"], "layers": shape["layers"], "width": shape["width"],
              "patch_size": shape["patch_size"], "head_width": shape["width"] // shape["heads"], "mlp_ratio": 4.0}
    base = open_clip.get_model_config(shape["open_clip"]) if shape["open_clip"] else None
    text = dict(base["text_cfg"]) if base else dict(_TINY_TEXT)
    return f"RICE-{name}-{shape['image_size']}", {"embed_dim": shape["output_dim"], "vision_cfg": vision,
                                                  "text_cfg": text}


def export_trunk(model, out_dir: str) -> str:
    """Write the open_clip-loadable export of a trained :class:`RiceViT` (see module doc).

    Args:
        model: the trained model (unwrapped from DDP).
        out_dir: folder to write.

    Returns:
        ``out_dir``.
    """
    os.makedirs(out_dir, exist_ok=True)
    visual = {k: v.detach().cpu() for k, v in model.visual.state_dict().items()}
    torch.save(visual, os.path.join(out_dir, "visual.pt"))
    name, config = open_clip_config(model)
    config_path = os.path.join(out_dir, f"{name}.json")
    with open(config_path, "w") as f:
        json.dump(config, f, indent=1)
    open_clip.add_model_config(config_path)
    clip = open_clip.create_model(name, pretrained=None)
    clip.visual.load_state_dict(visual)
    torch.save(clip.state_dict(), os.path.join(out_dir, "open_clip_model.pt"))
    info = {"open_clip_model": name, "open_clip_config": os.path.basename(config_path),
            "checkpoint": "open_clip_model.pt", "visual_state_dict": "visual.pt",
            "same_as_open_clip": model.shape["open_clip"], "image_size": model.shape["image_size"],
            "mean": list(CLIP_MEAN), "std": list(CLIP_STD), "rice_model": model.cfg.name,
            "note": "text tower randomly initialised: use encode_image only"}
    with open(os.path.join(out_dir, RICE_EXPORT_INFO), "w") as f:
        json.dump(info, f, indent=1)
    return out_dir


def load_exported(export_dir: str):
    """The exported trunk as an open_clip CLIP model (eval mode); use ``encode_image``.

    Args:
        export_dir: a folder written by :func:`export_trunk`.
    """
    name, checkpoint = read_rice_export(export_dir, option="export_dir")
    return open_clip.create_model(name, pretrained=checkpoint).eval()
