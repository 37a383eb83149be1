"""Token sequences with one image span, their labels, and batching (all Croc stages).

A sample is a list of text *segments*, each supervised or not; exactly one unsupervised segment
holds the image placeholder, which becomes ``num_visual_tokens`` positions. Supervised segments
(the caption, or the assistant's turns) are followed by EOS and carry labels; everything else is
``-100``. Truncation to ``max_length`` only ever cuts answer text: a sample whose image span would
not fit, or that keeps no supervised token, is dropped (the Croc code truncated into the image).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE = -100
IMAGE_PLACEHOLDER = "<image>"


@dataclass
class Segment:
    """A piece of text; ``supervised`` pieces get labels and, unless ``eos`` is False, an EOS after them."""

    text: str
    supervised: bool = False
    eos: bool = True


class SequenceBuilder:
    """Tokenise segments into ids, labels and position masks for one sample.

    Args:
        tokenizer: a ``transformers`` tokenizer (``encode``, ``bos_token_id``, ``eos_token_id``).
        num_visual_tokens: length of the image span (read off the vision encoder).
        max_length: maximum sequence length including the image span.
    """

    def __init__(self, tokenizer, num_visual_tokens: int, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.num_visual_tokens = int(num_visual_tokens)
        self.max_length = int(max_length)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False)) if text else []

    def build(self, segments: list[Segment]) -> dict[str, list] | None:
        """Return ``input_ids``, ``labels``, ``image``/``answer`` flags as lists, or None to drop.

        Args:
            segments: the sample's text pieces, in order.
        """
        ids: list[int] = []
        labels: list[int] = []
        image: list[bool] = []
        if self.tokenizer.bos_token_id is not None:
            ids, labels, image = [self.tokenizer.bos_token_id], [IGNORE], [False]
        spans = 0
        for seg in segments:
            if IMAGE_PLACEHOLDER in seg.text:
                if seg.supervised:
                    raise ValueError("the image placeholder must be in an unsupervised segment")
                parts = seg.text.split(IMAGE_PLACEHOLDER)
                spans += len(parts) - 1
                for i, part in enumerate(parts):
                    if i:
                        ids += [self.pad_id] * self.num_visual_tokens
                        labels += [IGNORE] * self.num_visual_tokens
                        image += [True] * self.num_visual_tokens
                    toks = self._encode(part)
                    ids, labels, image = ids + toks, labels + [IGNORE] * len(toks), image + [False] * len(toks)
                continue
            toks = self._encode(seg.text)
            if seg.supervised and seg.eos and self.tokenizer.eos_token_id is not None:
                toks = toks + [self.tokenizer.eos_token_id]
            ids += toks
            labels += toks if seg.supervised else [IGNORE] * len(toks)
            image += [False] * len(toks)
        if spans != 1:
            return None  # modality grouping: exactly one image span per sample
        last_image = max(i for i, flag in enumerate(image) if flag)
        if last_image >= self.max_length:
            return None
        ids, labels, image = ids[: self.max_length], labels[: self.max_length], image[: self.max_length]
        if all(t == IGNORE for t in labels):
            return None
        return {"input_ids": ids, "labels": labels, "image_mask": image}


def collate_sequences(samples: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad samples into a batch.

    Args:
        samples: dicts with ``image`` (3, S, S) tensor and the lists from :meth:`SequenceBuilder.build`.
        pad_id: id written at padding positions.

    Returns:
        ``images`` (B, 3, S, S), ``input_ids``, ``labels`` (B, L) long, ``image_mask``,
        ``answer_mask``, ``padding_mask`` (B, L) bool.
    """
    length = max(len(s["input_ids"]) for s in samples)
    b = len(samples)
    ids = torch.full((b, length), pad_id, dtype=torch.long)
    labels = torch.full((b, length), IGNORE, dtype=torch.long)
    image = torch.zeros((b, length), dtype=torch.bool)
    padding = torch.zeros((b, length), dtype=torch.bool)
    for i, s in enumerate(samples):
        n = len(s["input_ids"])
        ids[i, :n] = torch.tensor(s["input_ids"])
        labels[i, :n] = torch.tensor(s["labels"])
        image[i, :n] = torch.tensor(s["image_mask"])
        padding[i, :n] = True
    return {
        "images": torch.stack([s["image"] for s in samples]),
        "input_ids": ids, "labels": labels, "image_mask": image,
        "answer_mask": labels != IGNORE, "padding_mask": padding,
    }
