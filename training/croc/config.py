"""The config of a Croc run (one YAML file): sections data, model, method, loop.

Every field is documented on its dataclass; ``docs/training-croc.md`` has a commented example.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from regionset.training.croc.captions import CaptionConfig
from regionset.training.croc.conversation import ConversationConfig
from regionset.training.croc.lm import LMConfig
from regionset.training.croc.method import CrocMethodConfig
from regionset.training.croc.templates import TemplateName
from regionset.training.croc.tokenizer import TokenizerConfig
from regionset.training.croc.vision import VisionConfig
from regionset.training.loop import LoopConfig


@dataclass
class CrocModelConfig:
    """The model: vision encoder, causal LM and its tokenizer.

    Args:
        vision: encoder section.
        lm: LM section.
        tokenizer: tokenizer section.
    """

    vision: VisionConfig = field(default_factory=VisionConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)


@dataclass
class CrocDataConfig:
    """Where samples come from and how they are written.

    Args:
        train_dir: the build's output folder (or its ``train`` sub-folder).
        batch_size: samples per rank per step.
        num_workers: DataLoader workers per rank.
        seed: stream seed.
        source: ``captions`` (rows of ``OUT/train``; stages 1 and 1.5) or ``conversations``
            (a LLaVA JSONL; stage 2).
        max_length: maximum tokens per sample including the image span.
        template: text layout of a sample: ``custom`` (the ``captions``/``conversations`` fields),
            ``v1`` (Vicuna v1 with its system prompt, as Croc's stages 1.5 and 2) or ``plain``
            (``<image><caption>\\n``, Croc's stage 1); see :mod:`regionset.training.croc.templates`.
        captions: caption sample settings.
        conversations: conversation sample settings.
        tokenizer_texts: rows read from the shards to train a ``bpe`` tokenizer.
        build_run: the build run whose shards these are, named in the checkpoints' lineage (its run
            record must exist; the training DAG sets it from the asset event); empty: the newest run.
    """

    train_dir: str = "out"
    batch_size: int = 16
    num_workers: int = 2
    seed: int = 0
    source: Literal["captions", "conversations"] = "captions"
    max_length: int = 1024
    template: TemplateName = "custom"
    captions: CaptionConfig = field(default_factory=CaptionConfig)
    conversations: ConversationConfig = field(default_factory=ConversationConfig)
    tokenizer_texts: int = 10_000
    build_run: str = ""


@dataclass
class CrocConfig:
    """A Croc training run.

    Args:
        data: input settings.
        model: vision encoder, LM and tokenizer.
        method: stage, trained groups, learning rates, stage 1.5 settings.
        loop: the shared loop's settings (its ``lr`` is the schedule's reference; groups use ``method.lr``).
        device: ``auto``, ``cpu`` or ``cuda``.
        seed: model initialisation seed.
    """

    data: CrocDataConfig = field(default_factory=CrocDataConfig)
    model: CrocModelConfig = field(default_factory=CrocModelConfig)
    method: CrocMethodConfig = field(default_factory=CrocMethodConfig)
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(out_dir="runs/croc", weight_decay=0.0,
                                                                betas=[0.9, 0.999], warmup_steps=30))
    device: str = "auto"
    seed: int = 0
