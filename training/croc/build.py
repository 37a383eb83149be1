"""Factories of a Croc run: tokenizer, model + task, and the batch stream, from the config."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from regionset.common.storage import as_path
from regionset.training.checkpoint import latest_checkpoint
from regionset.training.croc.captions import CaptionTransform, DetailedCaption
from regionset.training.croc.config import CrocConfig
from regionset.training.croc.conversation import ConversationStream, ConversationTransform, ImageLookup
from regionset.training.croc.model import CrocModel, build_croc_model
from regionset.training.croc.sequence import SequenceBuilder, collate_sequences
from regionset.training.croc.task import CrocTask
from regionset.training.croc.tokenizer import TOKENIZER_FILE, build_tokenizer
from regionset.training.data import ShardStream, list_shards, read_shard


def tokenizer_texts(settings: CrocConfig) -> list[str]:
    """Texts a ``bpe`` tokenizer is trained on: captions of the shards or conversation turns.

    Args:
        settings: the run config.
    """
    data, limit, train_dir = settings.data, settings.data.tokenizer_texts, settings.data.train_dir
    texts: list[str] = [data.captions.prompt, data.captions.instruction, data.conversations.system,
                        data.conversations.user_prefix, data.conversations.assistant_prefix]
    if data.source == "conversations" and data.conversations.path:
        for line in as_path(data.conversations.path).read_text().splitlines():  # a local file or a URL
            if line.strip() and len(texts) < limit:
                texts += [t.get("value", "") for t in json.loads(line).get("conversations", [])]
        return texts
    detailed = DetailedCaption(data.captions) if data.captions.caption == "detailed" else None
    for shard in list_shards(train_dir) if train_dir else []:
        cols = ["caption", "regions", "width", "height"] if detailed else ["caption"]
        for row in read_shard(shard, columns=cols).to_pylist():
            texts.append(detailed(row) if detailed else (row.get("caption") or ""))
            if len(texts) >= limit:
                return texts
    return texts


def load_model_weights(model: CrocModel, path: str) -> None:
    """Load weights of a previous stage into ``model``; only the pool and head may be missing.

    Args:
        model: the Croc model.
        path: a run folder (its latest checkpoint), a checkpoint folder, or a ``.pt`` file (a state
            dict, or a dict whose ``model`` entry is one, as in a checkpoint's ``model.pt``).
    """
    if os.path.isdir(path):
        path = os.path.join(latest_checkpoint(path) or path, "model.pt")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("model", state)
    state = {k.removeprefix("module.").removeprefix("model."): v for k, v in state.items()}
    state.pop("step", None)  # the previous stage's step count does not carry over
    missing, unexpected = model.load_state_dict(state, strict=False)
    fresh = [k for k in missing if k != "step" and not k.startswith(("pool.", "recon_head."))]
    if fresh:
        raise ValueError(f"croc.method.init_from={path}: missing weights {fresh[:5]}")


def build_croc(settings: CrocConfig, run_dir: str | Path | None, rank: int | None = None):
    """Build the tokenizer, the model and the task of a run.

    Args:
        settings: the run config.
        run_dir: run directory (a ``bpe``/``bytes`` tokenizer is saved and reused there).
        rank: this process's rank (default: from the process group).

    Returns:
        (task, tokenizer).
    """
    m, method = settings.model, settings.method
    texts = _LazyTexts(settings) if m.tokenizer.kind == "bpe" else None  # read only if none is saved
    previous = (os.path.join(method.init_from, TOKENIZER_FILE),) if method.init_from and os.path.isdir(
        method.init_from) else ()
    tokenizer = build_tokenizer(m.tokenizer, m.lm.path, texts, run_dir, previous)
    model = build_croc_model(m.vision, m.lm, tokenizer,
                             pool_size=method.pool_size if method.uses_pool else 0, pool_init=method.pool_init,
                             recon=method if method.uses_pool else None)
    if method.init_from:
        load_model_weights(model, method.init_from)
    return CrocTask(model, method, rank=rank), tokenizer


def build_stream(settings: CrocConfig, task: CrocTask, tokenizer, epochs: int | None = None) -> ShardStream:
    """The batch stream of the run: caption rows of ``OUT/train`` or conversation records.

    Args:
        settings: the run config.
        task: the task (its model gives the visual token count and image preprocessing).
        tokenizer: the tokenizer.
        epochs: stop after this many epochs (None: forever).
    """
    train_dir, batch_size, seed = settings.data.train_dir, settings.data.batch_size, settings.data.seed
    vision = task.croc.vision
    builder = SequenceBuilder(tokenizer, task.croc.num_visual_tokens, settings.data.max_length)
    collate = _Collate(builder.pad_id)
    mean, std = vision.mean, vision.std
    if settings.data.source == "conversations":
        conv = settings.data.conversations
        if not conv.path:
            raise ValueError("croc.data.conversations.path: set it for data.source=conversations")
        lookup = ImageLookup(train_dir, conv.image_root)
        transform = ConversationTransform(conv, builder, lookup, vision.image_size, mean, std, settings.data.template)
        return ConversationStream(conv.path, transform, collate, batch_size, seed=seed, epochs=epochs)
    if not train_dir:
        raise ValueError("data.source=captions needs the train shards folder")
    transform = CaptionTransform(settings.data.captions, builder, vision.image_size, mean, std, settings.data.template)
    return ShardStream(train_dir, transform, collate, batch_size, seed=seed, epochs=epochs,
                       columns=["key", "jpg", "caption", "width", "height", "regions"])


class _LazyTexts:
    """The tokenizer texts, read from the shards only when iterated."""

    def __init__(self, settings: CrocConfig) -> None:
        self.settings = settings

    def __iter__(self):
        return iter(tokenizer_texts(self.settings))


class _Collate:
    """Picklable collate (DataLoader workers) padding with ``pad_id``."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, samples: list[dict]) -> dict:
        return collate_sequences(samples, self.pad_id)
