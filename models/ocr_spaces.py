"""Put back the spaces that PP-OCR's recogniser drops between words.

PP-OCR's CTC recogniser reads almost every character but often emits no space class between two
words ("saffroncopper"). Two ways to restore them, switchable per run (``OcrConfig.restore_spaces``):

- ``gaps``: what the recogniser itself knows. ``SpacingCTCDecode`` replaces RapidOCR's greedy CTC
  decoder (same text, same score) and also keeps, for every emitted character, its CTC frame and,
  between two characters, the highest probability the model gave the space class. A space is put
  back where that probability reaches ``space_prob`` (the model "almost" said space), after ``, ; ! ?``
  followed by a letter (or a digit not preceded by one), never before ``, . ; : ! ? ) %`` nor after
  ``( $``, and (off by default: it hurt) where the frame gap between two characters is
  at least ``gap_ratio`` times the line's median gap.
- ``wordseg``: a unigram/bigram word segmenter (``wordsegment``, its corpus shipped in the wheel)
  splits runs of ASCII letters that are not known words; digits and punctuation are left alone.
- ``both``: ``gaps`` then ``wordseg``; ``off``: the recogniser's text as is.

The numbers that chose the default and the thresholds are in BENCHMARKS.md (``bench/ocr_quality.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

RestoreMode = Literal["gaps", "wordseg", "both", "off"]
RESTORE_MODES = ("gaps", "wordseg", "both", "off")
# Chosen on rendered lines (bench/ocr_quality.py, tuning seed), see BENCHMARKS.md.
TUNED_RESTORE = "gaps"
TUNED_SPACE_PROB = 0.01
TUNED_GAP_RATIO = 0.0


@dataclass
class CharTimes:
    """Where the recogniser put each emitted character of one line.

    ``frames[i]`` is the CTC frame of character ``i``; ``space_prob[i]`` (i >= 1) the highest space
    probability on the frames strictly between character ``i - 1`` and character ``i`` (0 if none).
    """

    frames: list[int] = field(default_factory=list)
    space_prob: list[float] = field(default_factory=list)


class SpacingCTCDecode:
    """Greedy CTC decoding that also returns ``CharTimes`` (a drop-in for RapidOCR's decoder).

    Args:
        character: the recogniser's classes, blank first and space last (RapidOCR's list).
    """

    def __init__(self, character: list[str]) -> None:
        self.character = character
        self.space_id = character.index(" ", 1) if " " in character[1:] else -1

    def __call__(self, preds: np.ndarray, return_word_box: bool = False, **kwargs) -> list[tuple]:
        """Decode a batch ``preds`` (N x T x C probabilities) into ``(text, score, CharTimes)``."""
        out = []
        idx_all = preds.argmax(axis=2)
        for b in range(preds.shape[0]):
            idx = idx_all[b]
            sel = idx != 0
            sel[1:] &= idx[1:] != idx[:-1]
            cols = np.flatnonzero(sel)
            probs = preds[b, cols, idx[cols]]
            text = "".join(self.character[i] for i in idx[cols])
            sp = preds[b, :, self.space_id] if self.space_id > 0 else np.zeros(preds.shape[1])
            # only the frames strictly between two characters: a character's own frame is not a gap
            space = [0.0] + [float(sp[a + 1:c].max()) if c > a + 1 else 0.0 for a, c in zip(cols[:-1], cols[1:])]
            score = float(probs.mean()) if len(probs) else 0.0
            out.append((text, score, CharTimes([int(c) for c in cols], space)))
        return out


_SPACE_AFTER = set(",;!?")
_NO_SPACE_BEFORE = set(",.;:!?)%")
_NO_SPACE_AFTER = set("($")


def _is_cjk(ch: str) -> bool:
    return "\u2e80" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" or "\uff00" <= ch <= "\uffef"


def restore_gaps(text: str, times: CharTimes | None, space_prob: float = TUNED_SPACE_PROB,
                 gap_ratio: float = TUNED_GAP_RATIO) -> str:
    """Insert spaces where the recogniser nearly read one or left a wide gap.

    Args:
        text: the recognised text (one character per entry of ``times``).
        times: the decoder's ``CharTimes`` (None or mismatched: ``text`` is returned unchanged).
        space_prob: a space probability at or above this between two characters means a space.
        gap_ratio: a frame gap at least this many times the line's median gap means a space
            (0 turns the gap rule off).
    """
    if times is None or len(times.frames) != len(text) or len(text) < 2:
        return text
    gaps = np.diff(np.asarray(times.frames))
    body = gaps[[text[i] != " " and text[i + 1] != " " for i in range(len(gaps))]]
    median = float(np.median(body)) if len(body) else 0.0
    out = [text[0]]
    for i in range(1, len(text)):
        a, b = text[i - 1], text[i]
        if a != " " and b != " " and not (_is_cjk(a) or _is_cjk(b)):
            wide = gap_ratio > 0 and median > 0 and gaps[i - 1] >= gap_ratio * median
            prev = text[i - 2] if i >= 2 else ""
            # "HOTEL,A" -> "HOTEL, A" and "Planet,2026" -> "Planet, 2026", but not "1,000"
            after_punct = a in _SPACE_AFTER and (b.isalpha() or (b.isdigit() and not prev.isdigit()))
            never = b in _NO_SPACE_BEFORE or a in _NO_SPACE_AFTER  # "No .5", "paper ,", "( new"
            if not never and (times.space_prob[i] >= space_prob or wide or after_punct):
                out.append(" ")
        out.append(b)
    return "".join(out)


_LETTERS = re.compile(r"[A-Za-z]{2,}")
_segmenter = None


def _segment(word: str) -> list[str]:
    global _segmenter
    if _segmenter is None:
        try:
            import wordsegment
        except ImportError as e:
            raise ImportError("ocr.restore_spaces=wordseg|both needs wordsegment: pip install wordsegment==1.3.1") from e
        wordsegment.load()
        _segmenter = wordsegment
    return _segmenter.segment(word.lower())


def restore_wordseg(text: str, min_len: int = 6) -> str:
    """Split runs of ASCII letters (``min_len`` or longer) that the segmenter reads as several words.

    The original casing is kept; digits, punctuation and non-Latin text are left alone.

    Args:
        text: one recognised line.
        min_len: shorter letter runs are left as they are (short words are rarely merged pairs).
    """
    def split(m: re.Match) -> str:
        run = m.group(0)
        if len(run) < min_len:
            return run
        parts = _segment(run)
        if len(parts) < 2 or sum(map(len, parts)) != len(run):
            return run
        pieces, at = [], 0
        for p in parts:
            pieces.append(run[at:at + len(p)])
            at += len(p)
        return " ".join(pieces)

    return _LETTERS.sub(split, text)


def restore_spaces(text: str, times: CharTimes | None, mode: RestoreMode = TUNED_RESTORE,
                   space_prob: float = TUNED_SPACE_PROB, gap_ratio: float = TUNED_GAP_RATIO) -> str:
    """Apply one restoration ``mode`` (``gaps``, ``wordseg``, ``both`` or ``off``) to a line.

    Args:
        text: the recogniser's raw text.
        times: its ``CharTimes`` (needed by ``gaps``; None: ``gaps`` does nothing).
        mode: which method(s) to apply.
        space_prob: see ``restore_gaps``.
        gap_ratio: see ``restore_gaps``.
    """
    if mode not in RESTORE_MODES:
        raise ValueError(f"ocr.restore_spaces={mode!r}: expected one of {RESTORE_MODES}")
    if mode == "off":
        return text
    if mode in ("gaps", "both"):
        text = restore_gaps(text, times, space_prob, gap_ratio)
    if mode in ("wordseg", "both"):
        text = restore_wordseg(text)
    return " ".join(text.split())
