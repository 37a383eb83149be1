"""Tokenizers for the Croc LM: the LM's own, or one that needs no download.

- ``lm``: ``AutoTokenizer.from_pretrained(croc.lm.path)`` (the normal case with a pretrained LM);
- ``bpe``: a byte-level BPE trained with the ``tokenizers`` library on the training captions
  (``vocab_size`` entries), for random-init LMs and tests;
- ``bytes``: the same byte-level model with no merges (256 byte symbols + specials), the fallback
  that needs no text at all.
A ``bpe``/``bytes`` tokenizer is saved as ``tokenizer.json`` in the run directory (a local folder or
an object-store prefix, next to ``checkpoints/``) and loaded from there on resume (or from the previous stage's run with ``method.init_from``), so ids never change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from regionset.common.files import write_atomic
from regionset.common.storage import RemotePath, as_path

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
TOKENIZER_FILE = "tokenizer.json"


@dataclass
class TokenizerConfig:
    """Which tokenizer to use.

    Args:
        kind: ``lm``, ``bpe`` or ``bytes`` (see module docstring).
        vocab_size: target vocabulary of a ``bpe`` tokenizer (including the 256 byte symbols).
        path: a ``tokenizer.json`` file to load instead of training one (``bpe``/``bytes``).
    """

    kind: Literal["lm", "bpe", "bytes"] = "lm"
    vocab_size: int = 1024
    path: str | None = None


def build_tokenizer(cfg: TokenizerConfig, lm_path: str | None, texts: Iterable[str] | None = None,
                    save_dir: str | Path | None = None, fallbacks: tuple[str, ...] = ()):
    """Return a ``PreTrainedTokenizerFast`` with BOS, EOS and padding tokens set.

    Args:
        cfg: the tokenizer section of the Croc config.
        lm_path: ``croc.lm.path`` (used by kind ``lm``).
        texts: training texts for kind ``bpe`` (ignored when a saved tokenizer exists).
        save_dir: run directory: a saved ``tokenizer.json`` there is reused, a new one is written there.
        fallbacks: further ``tokenizer.json`` files to reuse before training one (the previous
            stage's, so that chained stages share ids).
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if cfg.kind == "lm":
        if not lm_path:
            raise ValueError("croc.tokenizer.kind=lm needs croc.lm.path; use kind bpe or bytes for a random-init LM")
        try:
            tok = AutoTokenizer.from_pretrained(lm_path)
        except (OSError, ValueError) as e:
            raise RuntimeError(f"could not load the tokenizer of {lm_path!r}: {e}. Offline, set "
                               "croc.lm.path to a local model directory.") from e
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token or tok.unk_token
        return tok
    own = as_path(save_dir) / TOKENIZER_FILE if save_dir else None
    sources = [p for p in (own, as_path(cfg.path) if cfg.path else None, *(as_path(f) for f in fallbacks)) if p]
    found = next((text for text in map(_read, sources) if text is not None), None)
    if found is not None:
        raw = _load(found)
    else:
        if cfg.kind == "bpe" and texts is None:
            raise ValueError("croc.tokenizer.kind=bpe needs training texts (the shard captions)")
        raw = train_byte_bpe(texts if cfg.kind == "bpe" else [], cfg.vocab_size if cfg.kind == "bpe" else 0)
    if own is not None and not own.exists():
        write_atomic(own, raw.to_str().encode())
    return PreTrainedTokenizerFast(tokenizer_object=raw, bos_token=BOS, eos_token=EOS, pad_token=PAD)


def train_byte_bpe(texts: Iterable[str], vocab_size: int):
    """Train a byte-level BPE ``tokenizers.Tokenizer`` (no merges when ``vocab_size`` <= 256).

    Args:
        texts: training texts.
        vocab_size: target vocabulary size including the byte alphabet and the 3 special tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=max(vocab_size, len(alphabet) + 3), special_tokens=[PAD, BOS, EOS],
        initial_alphabet=alphabet, show_progress=False,
    )
    tok.train_from_iterator(list(texts) or [""], trainer=trainer)
    return tok


def _read(path: Path | RemotePath) -> str | None:
    """A saved ``tokenizer.json`` (a local file or an object), or None when there is none."""
    try:
        return path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _load(text: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(text)
