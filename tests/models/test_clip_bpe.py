"""Our CLIP BPE (models/clip_bpe.py) gives open_clip SimpleTokenizer's ids, strings and special ids,
and the OCR labeler built on it imports neither open_clip nor torch."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regionset.models.clip_bpe import MERGES_FILE, ClipBPE, merges_path

ROOT = Path(__file__).resolve().parents[2]

CORPUS = [
    "hello world", "EXIT", "Route 66", "$4.99", "e-mail", "don't", "WE'LL", "it’s", "STOP", "No Parking 8am-6pm",
    "SALE 50% OFF!!!", "...", "?!?!", "--->", "(c) 2024", "#1 best", "@user", "a/b\\c", "1,234,567.89", "0800 123 456",
    "café", "Straße", "ÉCOLE", "Привет мир", "中文字幕", "東京タワー", "한국어", "مرحبا بالعالم", "שלום", "ελληνικά",
    "😀", "👍🏽 ok", "🇫🇷", "a\u0301", "ﬁnance", "Ⅻ", "²³", "٣٤٥", "&amp;amp;", "&lt;b&gt;bold&lt;/b&gt;", "&#39;quoted&#39;",
    "tab\there", "new\nline", "  leading and trailing  ", "\u00a0nbsp\u2003em", "soft\u00adhyphen", "zero\u200bwidth",
    "supercalifragilisticexpialidocious" * 8, "x" * 500, "ab" * 300, "1" * 50, "<start_of_text>hi<end_of_text>",
    "<START_OF_TEXT>", "<ſtart_of_text>", "\x00\x01ctrl\x7f", "Ã©", "mojibake: Ã¢â‚¬â„¢", "İstanbul", "K-9", "",
    "   ", "\n\t",
]


@pytest.fixture(scope="module")
def ours() -> ClipBPE:
    return ClipBPE()


@pytest.fixture(scope="module")
def theirs():
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


@pytest.mark.parametrize("text", CORPUS)
def test_encode_matches_open_clip(ours, theirs, text):
    assert ours.encode(text) == theirs.encode(text)


@settings(max_examples=3 * settings().max_examples)
@given(st.text(max_size=40) | st.lists(st.sampled_from(CORPUS), max_size=5).map(" ".join))
def test_encode_matches_open_clip_on_random_text(ours, theirs, text):
    assert ours.encode(text) == theirs.encode(text)


def test_vocabulary_and_special_ids_match_open_clip(ours, theirs):
    assert ours.vocab_size == len(theirs.decoder) == theirs.vocab_size == 49408
    assert ours.decoder == [theirs.decoder[i] for i in range(len(theirs.decoder))]
    assert ours.encoder == theirs.encoder
    assert ours.all_special_ids == theirs.all_special_ids == [49406, 49407]
    ids = ours.encode(" ".join(CORPUS))
    assert ours.decode(ids) == theirs.decode(ids)
    assert ours.decode([49406, 3306, 256]) == theirs.decode([49406, 3306, 256])  # a lone byte: replaced


def test_known_ids(ours):
    assert ours.encode("Hello, world!") == [3306, 267, 1002, 256]  # "hello</w>" "," "world</w>" "!</w>"
    assert ours.decoder[3306] == "hello</w>"


def test_missing_merges_file_names_it(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name: SimpleNamespace(submodule_search_locations=[str(tmp_path)]))
    with pytest.raises(FileNotFoundError, match=MERGES_FILE):
        merges_path()
    with pytest.raises(FileNotFoundError, match=MERGES_FILE):
        ClipBPE()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="open_clip is not installed"):
        merges_path()


def test_labeler_imports_neither_open_clip_nor_torch():
    """An assign worker (and the catalog driver) builds the labeler: torch alone is ~685 MiB of RSS."""
    code = ("import sys; from regionset.models.tokenizer import TokenLabeler; lab = TokenLabeler(); "
            "print(lab.labels('EXIT Route 66', 'r1')[:2], 'open_clip' in sys.modules, 'torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[9374,", "5261]", "False", "False"]
