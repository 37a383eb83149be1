"""OCR token labels: known ids, punctuation and special tokens removed, M sampling and padding."""

from __future__ import annotations

import pytest

from regionset.models.tokenizer import TokenizerConfig, TokenLabeler


@pytest.fixture(scope="module")
def labeler() -> TokenLabeler:
    return TokenLabeler(TokenizerConfig())


def test_known_strings_give_known_ids(labeler):
    # ids of open_clip's bundled BPE (bpe_simple_vocab_16e6): "hello</w>" = 3306, "world</w>" = 1002
    assert labeler.tokens("hello world") == [3306, 1002]
    assert labeler.tokens("Hello, world!") == [3306, 1002]  # lowercased by the BPE; punctuation gone
    assert labeler.tokens("STOP sign") == [1691, 2292]
    assert labeler.token_string(3306) == "hello"
    assert labeler.vocab_size == 49408


def test_special_and_punctuation_tokens_are_removed(labeler):
    assert labeler.tokens("<start_of_text> ... !!! ?") == []
    assert 49406 not in labeler.tokens("<start_of_text>hi<end_of_text>")
    assert labeler.tokens("a-b") == [320, 321]  # "a", "b"; the hyphen is dropped


def test_short_text_is_padded_to_m(labeler):
    assert labeler.labels("hello world") == [3306, 1002] + [-1] * 8
    rep = TokenLabeler(TokenizerConfig(pad_mode="repeat", num_positives=5))
    assert rep.labels("hello world") == [3306, 1002, 3306, 1002, 3306]


def test_repeated_tokens_count_once(labeler):
    assert labeler.tokens("hello hello world hello") == [3306, 1002]


def test_long_text_is_sampled_deterministically_in_order(labeler):
    text = "the quick brown fox jumps over a lazy dog while seven tired zebras quietly watch"
    all_ids = labeler.tokens(text)
    assert len(all_ids) > 10
    a = labeler.labels(text, "region-1")
    assert len(a) == 10 and a == labeler.labels(text, "region-1")
    assert set(a) <= set(all_ids)
    assert a == [t for t in all_ids if t in set(a)]  # kept in text order
    others = {tuple(labeler.labels(text, f"region-{i}")) for i in range(2, 8)}
    assert len(others) > 1  # the region id seeds the choice


def test_empty_text_has_no_labels(labeler):
    assert labeler.labels("") is None
    assert labeler.labels(None) is None
    assert labeler.labels("?!.,") is None


def test_config_errors_name_the_option():
    with pytest.raises(ValueError, match="tokenizer.hf_path"):
        TokenLabeler(TokenizerConfig(name="hf"))
    with pytest.raises(ValueError, match="tokenizer.num_positives"):
        TokenLabeler(TokenizerConfig(num_positives=0))


def test_local_hf_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "hello": 2, "world": 3, ",": 4, "!": 5}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]").save_pretrained(tmp_path)
    hf = TokenLabeler(TokenizerConfig(name="hf", hf_path=str(tmp_path), num_positives=3))
    assert hf.labels("hello , world !") == [2, 3, -1]
    assert hf.labels("[PAD] !") is None
    assert hf.vocab_size == 6 and hf.token_string(3) == "world"
