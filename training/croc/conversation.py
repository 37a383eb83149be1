"""Stage 2 (instruction tuning) data: LLaVA-format conversation JSONL.

One JSON object per line, as in LLaVA's ``llava_v1_5_mix665k``::

    {"id": "...", "image": "<train key or image path>",
     "conversations": [{"from": "human", "value": "<image>\\nWhat is this?"},
                       {"from": "gpt", "value": "A red square."}, ...]}

``image`` is looked up first as a key of the ``OUT/train`` shards, then as a file path (relative
paths under ``image_root``). The text is ``system`` + per turn ``user_prefix + human`` or
``assistant_prefix`` + the supervised assistant reply + EOS (close to Vicuna v1), or the layout of a
named template (``data.template``: ``v1``, ``plain``; :mod:`regionset.training.croc.templates`).
Samples without exactly one ``<image>`` are skipped: batches hold one image span per sample.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc

from regionset.common.storage import as_path, is_remote
from regionset.training.croc.sequence import Segment, SequenceBuilder
from regionset.training.croc.templates import V1_SYSTEM, TemplateName, render
from regionset.training.data import ShardStream, decode_image, letterbox, list_shards, read_shard, to_tensor
from regionset.training.distributed import rank_world


@dataclass
class ConversationConfig:
    """Where the conversations are and how turns are written.

    Args:
        path: the conversation JSONL file.
        image_root: folder that relative image paths are resolved under.
        system: text before the first turn.
        user_prefix: text before each human turn.
        assistant_prefix: text before each assistant reply (not supervised).
    """

    path: str | None = None
    image_root: str | None = None
    system: str = V1_SYSTEM
    user_prefix: str = " USER: "
    assistant_prefix: str = " ASSISTANT: "


def conversation_segments(record: dict, cfg: ConversationConfig, template: TemplateName = "custom") -> list[Segment]:
    """The text segments of one LLaVA record (assistant replies supervised).

    Args:
        record: a parsed JSONL line.
        cfg: turn layout (for the ``custom`` template).
        template: ``custom`` (``cfg``'s fields), ``v1`` or ``plain``.
    """
    if template != "custom":
        return render(template, [(t.get("from", ""), t.get("value", "")) for t in record.get("conversations", [])])
    segments = [Segment(cfg.system)]
    for turn in record.get("conversations", []):
        role = turn.get("from")
        if role in ("human", "user"):
            segments.append(Segment(cfg.user_prefix + turn.get("value", "")))
        elif role in ("gpt", "assistant"):
            segments += [Segment(cfg.assistant_prefix), Segment(turn.get("value", ""), supervised=True)]
    return segments


class ImageLookup:
    """Image bytes by train-shard key, else by file path.

    Args:
        train_dir: ``OUT`` or ``OUT/train`` (None: paths only).
        image_root: folder for relative paths.
    """

    def __init__(self, train_dir: str | None, image_root: str | None = None) -> None:
        self.image_root = image_root
        self.where: dict[str, str] = {}
        if train_dir:
            for shard in list_shards(train_dir):
                for key in read_shard(shard, columns=["key"]).column("key").to_pylist():
                    self.where[key] = shard

    def _shard(self, shard: str):
        # consecutive look-ups in one shard (sorted JSONL) read it once
        if getattr(self, "_cached", (None,))[0] != shard:
            self._cached = (shard, read_shard(shard, columns=["key", "jpg"]))
        return self._cached[1]

    def __call__(self, ref: str) -> bytes | None:
        """The encoded image named by ``ref``, or None when it is neither a key nor a file."""
        shard = self.where.get(ref)
        if shard is not None:
            table = self._shard(shard)
            hit = table.filter(pc.equal(table.column("key"), ref))
            return hit.column("jpg")[0].as_py() if hit.num_rows else None
        absolute = os.path.isabs(ref) or is_remote(ref)
        path = as_path(ref if absolute or not self.image_root else f"{self.image_root.rstrip('/')}/{ref}")
        try:  # a local file or an object (one GET; no existence check first)
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None


class ConversationTransform:
    """Stream transform: a conversation record -> image tensor + token sequence (or None to skip).

    Args:
        cfg: turn layout.
        builder: the sequence builder.
        lookup: image resolver.
        image_size: encoder input side.
        mean: normalisation mean.
        std: normalisation std.
        template: ``custom``, ``v1`` or ``plain``.
    """

    def __init__(self, cfg: ConversationConfig, builder: SequenceBuilder, lookup: ImageLookup,
                 image_size: int, mean: tuple[float, ...], std: tuple[float, ...],
                 template: TemplateName = "custom") -> None:
        self.cfg, self.builder, self.lookup, self.template = cfg, builder, lookup, template
        self.image_size, self.mean, self.std = image_size, tuple(mean), tuple(std)

    def __call__(self, record: dict, rng: np.random.Generator | None = None) -> dict | None:
        """Return the sample, or None (no image, not exactly one ``<image>``, does not fit)."""
        ref = record.get("image")
        data = self.lookup(str(ref)) if ref else None
        if data is None:
            return None
        seq = self.builder.build(conversation_segments(record, self.cfg, self.template))
        if seq is None:
            return None
        try:
            arr, _ = letterbox(decode_image(data), self.image_size)
        except Exception:  # broken image: skipped like any unusable record
            return None
        seq["image"] = to_tensor(arr, self.mean, self.std)
        return seq


class ConversationStream(ShardStream):
    """Batches of conversation records with the rank × worker split and resumable position of
    :class:`regionset.training.data.ShardStream` (the whole file is one shard of records).

    Args:
        path: the JSONL file.
        transform: record -> sample | None.
        collate: samples -> batch.
        batch_size: samples per batch on this rank.
        seed: stream seed.
        epochs: stop after this many epochs (None: forever).
    """

    def __init__(self, path: str, transform, collate, batch_size: int, seed: int = 0,
                 epochs: int | None = None) -> None:
        text = as_path(path).read_text()  # a local file or a URL
        self.records = [json.loads(line) for line in text.splitlines() if line.strip()]
        if not self.records:
            raise ValueError(f"no conversations in {path}")
        self.shards, self.rows = [path], [len(self.records)]
        self.rank, self.world_size = rank_world()
        self.transform, self.collate, self.batch_size = transform, collate, batch_size
        self.seed, self.epochs, self.shuffle, self.drop_last, self.columns = seed, epochs, True, False, None
        self.start_positions = {}  # ShardStream.__init__ is skipped on purpose: there are no shards to list

    def _rows(self, reader: int, readers: int, start: dict[str, int]):
        epoch = start.get("epoch", 0)
        mine = np.arange(reader, len(self.records), readers)
        if len(mine) == 0:
            return
        while self.epochs is None or epoch < self.epochs:
            order = np.random.default_rng([self.seed, epoch]).permutation(mine)
            first = start.get("row", 0) if epoch == start.get("epoch", 0) else 0
            for i in range(first, len(order)):
                nxt = {"epoch": epoch, "unit": 0, "row": i + 1} if i + 1 < len(order) else \
                    {"epoch": epoch + 1, "unit": 0, "row": 0}
                yield self.records[int(order[i])], np.random.default_rng([self.seed, epoch, int(order[i])]), nxt
            epoch += 1
