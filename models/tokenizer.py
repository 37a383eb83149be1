"""OCR token labels: a region's text -> its M positive token ids (RICE's OCR classes).

The default tokenizer is open_clip's bundled BPE (``SimpleTokenizer``, 49,408 ids, shipped inside
the wheel: no download), run by ``models/clip_bpe.py``: the same ids without importing open_clip or
torch. A HuggingFace tokenizer can be used instead from a local folder (``hf_path``), loaded with
``local_files_only``. Special tokens (start/end of text, padding, ...) and tokens that are pure
punctuation once decoded (``,`` ``!`` ``...``) are removed, repeated ids are kept once (RICE's
positives are a set), then:

- more than M left: M of them are sampled without replacement, deterministically from
  ``(seed, region id)``, and kept in text order;
- fewer than M: padded to M with ``pad_id`` (default -1, "no label": training masks it out), or,
  with ``pad_mode: repeat``, by cycling the ids present;
- none left (empty or all-punctuation text): no labels; the caller counts the drop.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class TokenizerConfig:
    """Which tokenizer makes OCR labels and how many positives a region gets.

    Args:
        name: ``open_clip`` (bundled BPE, the default) or ``hf`` (a local HuggingFace tokenizer).
        hf_path: local folder of the HF tokenizer (``name: hf`` only; no download is attempted).
        num_positives: M, the positive token ids per text region (RICE: 10 was best).
        pad_mode: ``pad_id`` fills short lists with ``pad_id``; ``repeat`` cycles the ids present.
        pad_id: the id used to pad (-1: not a class; training ignores it).
        seed: seed of the deterministic sampling of M ids out of longer texts.
        lowercase: lowercase the text first (open_clip's BPE lowercases anyway).
    """

    name: Literal["open_clip", "hf"] = "open_clip"
    hf_path: str = ""
    num_positives: int = 10
    pad_mode: Literal["pad_id", "repeat"] = "pad_id"
    pad_id: int = -1
    seed: int = 0
    lowercase: bool = False


def _is_punct(token: str) -> bool:
    chars = [c for c in token if not c.isspace()]
    return not chars or all(unicodedata.category(c).startswith("P") for c in chars)


class TokenLabeler:
    """Turns region texts into fixed-length lists of positive token ids.

    Args:
        config: the tokenizer config.
    """

    def __init__(self, config: TokenizerConfig = TokenizerConfig()) -> None:
        if config.num_positives < 1:
            raise ValueError("tokenizer.num_positives: must be >= 1")
        self.config = config
        if config.name == "open_clip":
            from regionset.models.clip_bpe import ClipBPE

            tok = ClipBPE()  # open_clip SimpleTokenizer's ids, without importing open_clip or torch
            self._encode = tok.encode
            self._strings = [tok.decoder[i] for i in range(len(tok.decoder))]
            self._strings = [s.replace("</w>", " ").strip() for s in self._strings]
            special = set(tok.all_special_ids)
            self.model_id = "open_clip:SimpleTokenizer(bpe_simple_vocab_16e6)"
        else:
            if not config.hf_path:
                raise ValueError("tokenizer.hf_path: set it to a local HuggingFace tokenizer folder for name=hf")
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(config.hf_path, local_files_only=True)
            self._encode = lambda text: tok.encode(text, add_special_tokens=False)
            self._strings = [tok.convert_tokens_to_string([t]).strip() for t in tok.convert_ids_to_tokens(
                list(range(len(tok))))]
            special = set(tok.all_special_ids)
            self.model_id = f"hf:{config.hf_path}"
        keep = np.array([not _is_punct(s) for s in self._strings], dtype=bool)
        keep[list(special)] = False
        self._keep = keep

    @property
    def vocab_size(self) -> int:
        """Number of ids of the tokenizer (the OCR class count)."""
        return len(self._strings)

    def token_string(self, token_id: int) -> str:
        """The decoded text of one id (for the catalog's vocabulary summary)."""
        return self._strings[token_id] if 0 <= token_id < len(self._strings) else ""

    def tokens(self, text: str | None) -> list[int]:
        """All label-worthy ids of ``text``, in text order, each once (no sampling or padding)."""
        if not text:
            return []
        if self.config.lowercase:
            text = text.lower()
        seen: dict[int, None] = {}
        for i in self._encode(text):
            if 0 <= i < len(self._keep) and self._keep[i]:
                seen.setdefault(int(i), None)
        return list(seen)

    def labels(self, text: str | None, region_id: str = "") -> list[int] | None:
        """The M positive ids of one region, or None when its text has no usable token.

        Args:
            text: the OCR text of the region.
            region_id: the region's stable id; seeds the sampling so reruns give the same ids.
        """
        ids = self.tokens(text)
        m = self.config.num_positives
        if not ids:
            return None
        if len(ids) > m:
            digest = hashlib.sha256(f"{self.config.seed}:{region_id}".encode()).digest()
            rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
            pick = np.sort(rng.choice(len(ids), size=m, replace=False))
            return [ids[i] for i in pick]
        if len(ids) < m:
            if self.config.pad_mode == "repeat":
                return [ids[i % len(ids)] for i in range(m)]
            return ids + [self.config.pad_id] * (m - len(ids))
        return ids
