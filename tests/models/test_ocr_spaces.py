"""Space restoration: the recogniser's space probabilities, punctuation, word segmentation, modes."""

from __future__ import annotations

import numpy as np
import pytest

from regionset.models.ocr_spaces import (
    CharTimes,
    SpacingCTCDecode,
    restore_gaps,
    restore_spaces,
    restore_wordseg,
)


def _times(text: str, spaces: dict[int, float]) -> CharTimes:
    """Characters 2 frames apart; ``spaces[i]``: space probability before character ``i``."""
    return CharTimes([2 * i for i in range(len(text))], [spaces.get(i, 0.0) for i in range(len(text))])


def test_space_probability_between_characters_restores_the_space():
    text = "saffroncopper24"
    times = _times(text, {7: 0.3, 13: 0.012, 3: 0.004})
    assert restore_gaps(text, times, space_prob=0.01) == "saffron copper 24"
    assert restore_gaps(text, times, space_prob=0.5) == text


def test_punctuation_rule_and_what_it_leaves_alone():
    assert restore_gaps("HOTEL,A-113", _times("HOTEL,A-113", {})) == "HOTEL, A-113"
    assert restore_gaps("1,000 km", _times("1,000 km", {})) == "1,000 km"  # digits after a comma
    assert restore_gaps("Planet,2026", _times("Planet,2026", {})) == "Planet, 2026"
    assert restore_gaps("No.5(new)$3", _times("No.5(new)$3", {2: 0.9, 5: 0.9, 4: 0.9, 9: 0.9})) == "No.5 (new) $3"
    assert restore_gaps("你好世界", _times("你好世界", {2: 0.9})) == "你好世界"  # no spaces in CJK


def test_mismatched_or_missing_times_leave_the_text_as_is():
    assert restore_gaps("abcdef", None) == "abcdef"
    assert restore_gaps("abcdef", _times("abc", {1: 0.9})) == "abcdef"


def test_wordseg_splits_letter_runs_and_keeps_case_digits_and_punctuation():
    assert restore_wordseg("SaffronCopper 24/7 A-113") == "Saffron Copper 24/7 A-113"
    assert restore_wordseg("transformer") == "transformer"  # a known word stays whole
    assert restore_wordseg("mint") == "mint"  # short runs untouched


def test_modes():
    text, times = "goldenbridge,x", _times("goldenbridge,x", {6: 0.5})
    assert restore_spaces(text, times, "off") == text
    assert restore_spaces(text, times, "gaps") == "golden bridge, x"
    assert restore_spaces(text, None, "wordseg") == "golden bridge,x"
    assert restore_spaces(text, None, "both") == "golden bridge,x"
    with pytest.raises(ValueError, match="ocr.restore_spaces='maybe'"):
        restore_spaces(text, times, "maybe")


def test_decoder_keeps_frames_and_space_probability_strictly_between():
    chars = ["blank", "a", "b", " "]
    p = np.full((1, 6, 4), 0.0, np.float32)
    for t, (c, sp) in enumerate([(1, 0.0), (0, 0.0), (0, 0.2), (2, 0.0), (2, 0.0), (0, 0.0)]):
        p[0, t, c] = 1.0 - sp
        p[0, t, 3] = sp
    p[0, 3, 3] = 0.9  # below argmax "b" (but on b's own frame: not a gap)
    p[0, 3, 2] = 1.0
    text, score, times = SpacingCTCDecode(chars)(p)[0]
    assert text == "ab" and times.frames == [0, 3] and times.space_prob == [0.0, pytest.approx(0.2)]
    assert 0.9 < score <= 1.0
