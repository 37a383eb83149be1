"""The causal language model of the Croc model: any ``transformers`` ``AutoModelForCausalLM``.

Either a pretrained model (``path``: a local directory, or a hub name where the hub is reachable)
or a random-init model built with ``from_config`` from a mapping with ``model_type`` (a tiny
Llama/Qwen2 for tests, a 0.5B-class config for the GPU benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

TINY_LLAMA: dict[str, Any] = {
    "model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512,
}


@dataclass
class LMConfig:
    """Which causal LM to use.

    Args:
        path: local model directory or hub name (``from_pretrained``); empty = random init from ``config``.
        config: ``transformers`` config mapping with ``model_type`` for a random-init LM; its
            ``vocab_size`` defaults to the tokenizer's length.
        dtype: parameter dtype of the LM (``float32``, ``bfloat16``, ``float16``).
        attn_implementation: ``sdpa`` or ``eager`` (both take Croc's 4-D additive mask).
    """

    path: str | None = None
    config: dict[str, Any] = field(default_factory=lambda: dict(TINY_LLAMA))
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"


def build_lm(cfg: LMConfig, vocab_size: int, bos_id: int | None, eos_id: int | None,
             pad_id: int | None) -> nn.Module:
    """Build the LM named by ``cfg``.

    Args:
        cfg: the LM section of the Croc config.
        vocab_size: the tokenizer's length (a random-init LM is sized to it; a pretrained one is
            resized when the tokenizer is larger).
        bos_id: tokenizer's BOS id (written into a random-init config).
        eos_id: tokenizer's EOS id.
        pad_id: tokenizer's padding id.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    dtype = DTYPES[cfg.dtype]
    if cfg.path:
        try:
            lm = AutoModelForCausalLM.from_pretrained(
                cfg.path, dtype=dtype, attn_implementation=cfg.attn_implementation)
        except (OSError, ValueError) as e:
            raise RuntimeError(
                f"could not load the LM {cfg.path!r}: {e}. Offline, set croc.lm.path to a local "
                "model directory (config.json + weights), or leave it empty and give croc.lm.config "
                "for a random-init model."
            ) from e
        if lm.get_input_embeddings().weight.shape[0] < vocab_size:
            lm.resize_token_embeddings(vocab_size)
        return lm
    spec = dict(cfg.config)
    model_type = spec.pop("model_type", None)
    if not model_type:
        raise ValueError("croc.lm.config needs a model_type (e.g. llama, qwen2) when croc.lm.path is empty")
    spec.setdefault("vocab_size", vocab_size)
    if spec["vocab_size"] < vocab_size:
        raise ValueError(f"croc.lm.config.vocab_size={spec['vocab_size']} < tokenizer size {vocab_size}")
    for key, value in (("bos_token_id", bos_id), ("eos_token_id", eos_id), ("pad_token_id", pad_id)):
        spec.setdefault(key, value)
    config = AutoConfig.for_model(model_type, **spec)
    config._attn_implementation = cfg.attn_implementation
    lm = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return lm
