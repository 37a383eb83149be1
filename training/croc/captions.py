"""Caption samples straight from ``OUT/train`` rows (Croc stages 1 and 1.5).

The text is the row's ``caption`` or, with ``caption: detailed``, a *detailed caption* assembled
from the row's regions after it:

    "<caption>. Objects: <name> (<where>), ... Text: "<ocr>", ..."

- objects (``source == object``): ``class_id`` is the global k-means leaf id; its name comes from
  ``class_names`` (a JSON file ``{"<class_id>": "name"}``, e.g. made from the catalog's majority
  detector class per cluster) or is written ``class <id>``; ``<where>`` is the cell of a 3 × 3 grid
  holding the box centre (``top left`` ... ``bottom right``); largest boxes first, ``max_objects``;
- text (``source == text``): ``token_ids`` decoded with open_clip's bundled BPE (the pipeline's
  default OCR tokenizer), special and padding ids dropped; ``max_texts`` of them. These are RICE's
  label sets (at most M ids, repeats dropped), so the text approximates the OCR line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import numpy as np

from regionset.common.storage import as_path
from regionset.schemas.tables import SOURCE_OBJECT, SOURCE_TEXT
from regionset.training.croc.sequence import IMAGE_PLACEHOLDER, Segment, SequenceBuilder
from regionset.training.croc.templates import TEMPLATES, TemplateName, render
from regionset.training.data import decode_image, letterbox, to_tensor

ROWS = ("top", "middle", "bottom")
COLS = ("left", "centre", "right")
INSTRUCTION = f"{IMAGE_PLACEHOLDER}\nDescribe the image."


@dataclass
class CaptionConfig:
    """How a caption sample is written.

    Args:
        prompt: the text before the answer (``custom`` template); must contain ``<image>`` once.
        instruction: the human turn of a caption sample under a named template (``v1``; ``plain``
            keeps only its ``<image>``); must contain ``<image>`` once.
        caption: ``caption`` (the row's caption) or ``detailed`` (caption + regions, see module doc).
        answer_prefix: text put before the caption inside the supervised answer (``custom`` template).
        class_names: JSON file mapping class ids to names, for detailed captions.
        max_objects: most object regions named in a detailed caption.
        max_texts: most OCR texts quoted in a detailed caption.
    """

    prompt: str = f"USER: {INSTRUCTION} ASSISTANT:"
    instruction: str = INSTRUCTION
    caption: Literal["caption", "detailed"] = "caption"
    answer_prefix: str = " "
    class_names: str | None = None
    max_objects: int = 8
    max_texts: int = 4


def _where(box: list[float], width: float, height: float) -> str:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    col = min(2, int(3 * cx / max(width, 1.0)))
    row = min(2, int(3 * cy / max(height, 1.0)))
    return "centre" if (row, col) == (1, 1) else f"{ROWS[row]} {COLS[col]}"


class DetailedCaption:
    """Assemble the detailed caption of a train row (see module docstring).

    Args:
        cfg: caption settings (class names file, limits).
    """

    def __init__(self, cfg: CaptionConfig) -> None:
        self.cfg = cfg
        self.names: dict[int, str] = {}
        if cfg.class_names:
            doc = json.loads(as_path(cfg.class_names).read_text())  # a local file or a URL
            self.names = {int(k): str(v) for k, v in doc.items()}
        self._ocr = None

    def _name(self, class_id: int) -> str:
        return self.names.get(class_id, f"class {class_id}")

    def _decode(self, ids: list[int]) -> str:
        if self._ocr is None:
            from open_clip.tokenizer import SimpleTokenizer

            self._ocr = SimpleTokenizer()
        special = set(self._ocr.all_special_ids)
        return self._ocr.decode([i for i in ids if i >= 0 and i not in special]).strip()

    def __call__(self, row: dict) -> str:
        """The detailed caption of ``row`` (a dict of the train schema)."""
        base = (row.get("caption") or "").strip().rstrip(".")
        regions = row.get("regions") or []
        w, h = float(row.get("width") or 1), float(row.get("height") or 1)
        objects = [r for r in regions if r["source"] == SOURCE_OBJECT and r.get("class_id", -1) is not None
                   and r.get("class_id", -1) >= 0]
        objects.sort(key=lambda r: -(r["box"][2] - r["box"][0]) * (r["box"][3] - r["box"][1]))
        parts = [base] if base else []
        named = [f"{self._name(r['class_id'])} ({_where(r['box'], w, h)})" for r in objects[: self.cfg.max_objects]]
        if named:
            parts.append("Objects: " + ", ".join(named))
        texts = [self._decode(r.get("token_ids") or []) for r in regions if r["source"] == SOURCE_TEXT]
        texts = [t for t in texts if t][: self.cfg.max_texts]
        if texts:
            parts.append("Text: " + ", ".join(f'"{t}"' for t in texts))
        return ". ".join(parts) + ("." if parts else "")


class CaptionTransform:
    """``ShardStream`` transform: a train row -> image tensor + caption token sequence.

    Args:
        cfg: caption settings.
        builder: the sequence builder (tokenizer, visual token count, max length).
        image_size: encoder input side in pixels.
        mean: encoder normalisation mean.
        std: encoder normalisation std.
        template: ``custom`` (``prompt`` + ``answer_prefix``), ``v1`` or ``plain`` (``instruction``).
    """

    def __init__(self, cfg: CaptionConfig, builder: SequenceBuilder, image_size: int,
                 mean: tuple[float, ...], std: tuple[float, ...], template: TemplateName = "custom") -> None:
        if template not in TEMPLATES:
            raise ValueError(f"croc.data.template: expected one of {list(TEMPLATES)}, got {template!r}")
        field = "prompt" if template == "custom" else "instruction"
        if getattr(cfg, field).count(IMAGE_PLACEHOLDER) != 1:
            raise ValueError(f"croc.data.captions.{field} must contain {IMAGE_PLACEHOLDER} exactly once")
        self.cfg, self.builder, self.template = cfg, builder, template
        self.image_size, self.mean, self.std = image_size, tuple(mean), tuple(std)
        self.detailed = DetailedCaption(cfg) if cfg.caption == "detailed" else None

    def text(self, row: dict) -> str:
        """The caption text of ``row`` (plain or detailed)."""
        return self.detailed(row) if self.detailed else (row.get("caption") or "").strip()

    def segments(self, text: str) -> list[Segment]:
        """The segments of a caption sample whose answer is ``text``."""
        if self.template == "custom":
            return [Segment(self.cfg.prompt), Segment(self.cfg.answer_prefix + text, True)]
        return render(self.template, [("human", self.cfg.instruction), ("gpt", text)])

    def __call__(self, row: dict, rng: np.random.Generator | None = None) -> dict | None:
        """Return the sample or None (no caption, undecodable image, or the sequence does not fit)."""
        text = self.text(row)
        if not text or not row.get("jpg"):
            return None
        try:
            arr, _ = letterbox(decode_image(row["jpg"]), self.image_size)
        except Exception:  # a broken image is skipped, as the stream's contract allows
            return None
        seq = self.builder.build(self.segments(text))
        if seq is None:
            return None
        seq["image"] = to_tensor(arr, self.mean, self.std)
        return seq
