"""CLIP's byte-level BPE, giving open_clip ``SimpleTokenizer``'s ids without importing open_clip or torch.

open_clip's tokenizer module imports torch (about +685 MiB RSS in every process that builds it); the
BPE itself only needs the merges file that the open_clip wheel ships (``bpe_simple_vocab_16e6.txt.gz``).
This module reads that file from the installed package (found with ``importlib.util.find_spec``, which
does not import it) and reproduces the algorithm: text cleaning (ftfy ``fix_text``, HTML unescaped
twice, whitespace collapsed, lower-cased), the same pre-tokenising pattern, UTF-8 bytes mapped to
printable characters, then merges applied lowest rank first until none applies.

Ids: 256 byte symbols, the same 256 ending a word (``</w>``), 48,894 merges, then
``<start_of_text>`` (49406) and ``<end_of_text>`` (49407): 49,408 in all.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
from functools import lru_cache
from pathlib import Path

import ftfy
import regex

MERGES_FILE = "bpe_simple_vocab_16e6.txt.gz"
N_MERGES = 49152 - 256 - 2  # CLIP uses the first 48,894 merges of the file (after its header line)
SPECIAL_TOKENS = ("<start_of_text>", "<end_of_text>")
END_OF_WORD = "</w>"
CACHE_WORDS = 1 << 16  # word -> ids cache per tokenizer (LRU, so a long-lived worker stays bounded)
# Special tokens, English contractions, runs of letters, single digits, runs of other non-space characters.
_PATTERN = "|".join(SPECIAL_TOKENS) + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def merges_path() -> Path:
    """The merges file inside the installed open_clip package (the package is located, not imported)."""
    spec = importlib.util.find_spec("open_clip")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / MERGES_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"{MERGES_FILE}: not found in the installed open_clip package "
                            f"({folders or 'open_clip is not installed'}); install open_clip_torch")


def byte_symbols() -> list[tuple[int, str]]:
    """(byte, symbol) pairs in vocabulary order: printable Latin-1 bytes stand for themselves, first;
    the other 68 bytes (controls, space, soft hyphen) follow, mapped to chr(256), chr(257), ..."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    rest = [b for b in range(256) if b not in set(printable)]
    return [(b, chr(b)) for b in printable] + [(b, chr(256 + n)) for n, b in enumerate(rest)]


def clean(text: str) -> str:
    """The text the BPE sees: mojibake fixed, HTML entities unescaped twice, whitespace collapsed, lower-cased."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).lower()


class ClipBPE:
    """CLIP's BPE tokenizer (open_clip ``SimpleTokenizer`` ids, strings and special ids).

    Args:
        path: the merges file; default: the one in the installed open_clip package.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        path = Path(path) if path else merges_path()
        with gzip.open(path, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")[1:N_MERGES + 1]
        merges = [tuple(line.split()) for line in lines]
        pairs = byte_symbols()
        self._byte_to_symbol = {b: s for b, s in pairs}
        symbols = [s for _, s in pairs]
        #: id -> vocabulary string (bytes as symbols, ``</w>`` ending a word), as ``SimpleTokenizer.decoder``
        self.decoder: list[str] = (symbols + [s + END_OF_WORD for s in symbols]
                                   + ["".join(m) for m in merges] + list(SPECIAL_TOKENS))
        self.encoder: dict[str, int] = {s: i for i, s in enumerate(self.decoder)}
        self.all_special_ids: list[int] = [self.encoder[t] for t in SPECIAL_TOKENS]
        self.vocab_size = len(self.decoder)
        self._ranks = {m: r for r, m in enumerate(merges)}
        self._pattern = regex.compile(_PATTERN, regex.IGNORECASE)
        self._word_ids = lru_cache(maxsize=CACHE_WORDS)(self._bpe)

    def _bpe(self, word: str) -> tuple[int, ...]:
        """Ids of one pre-token (already mapped to byte symbols)."""
        if word in SPECIAL_TOKENS:
            return (self.encoder[word],)
        parts = [*word[:-1], word[-1] + END_OF_WORD]
        ranks = self._ranks
        while len(parts) > 1:
            best = min(zip(parts, parts[1:]), key=lambda p: ranks.get(p, N_MERGES))
            if best not in ranks:
                break
            first, second = best
            merged, i = [], 0
            while i < len(parts):  # merge every occurrence, left to right, without overlap
                if i + 1 < len(parts) and parts[i] == first and parts[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return tuple(self.encoder[p] for p in parts)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no start/end tokens, no truncation), as ``SimpleTokenizer.encode``."""
        ids: list[int] = []
        to_symbol = self._byte_to_symbol
        for token in self._pattern.findall(clean(text)):
            ids.extend(self._word_ids("".join(to_symbol[b] for b in token.encode("utf-8"))))
        return ids

    def decode(self, ids: list[int]) -> str:
        """The text of ``ids`` (word ends become spaces; invalid UTF-8 is replaced), as ``SimpleTokenizer.decode``."""
        from_symbol = {s: b for b, s in self._byte_to_symbol.items()}
        symbols = "".join(self.decoder[i] for i in ids)
        return bytes(from_symbol[c] for c in symbols).decode("utf-8", errors="replace").replace(END_OF_WORD, " ")
