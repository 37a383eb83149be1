"""Candidate pairs of near-duplicate 64-bit hashes, as DuckDB SQL (the hashes never pass through Python).

Two index schemes, each an equi-join per key column verified by ``bit_count(xor) <= threshold``:
- ``bands``: the hash cut into ``bands`` equal bands (4 x 16 bits by default); two hashes are compared
  when one band is equal. Every pair within ``bands - 1`` bits is found (pigeonhole) and, with narrow
  bands, most wider pairs too; but uniform hashes give ``N^2 / 2 * bands / 2^width`` candidate pairs
  (3e7 at 1M, 3e9 at 10M with 16-bit bands): quadratic.
- ``halves`` (multi-index hashing with a one-bit probe): the two 32-bit halves; each hash probes its
  half and the 32 one-bit flips of it. A pair within 3 bits has a half within 1 bit, so every pair
  within 3 bits is found, and uniform hashes give ``N^2 / 2 * 2 * 33 / 2^32`` candidates (7.7e5 at
  10M): the work is the ``2 * 33 * N`` probes, linear in N. With ``halvings=2`` the hash rotated by
  16 bits is halved too (bits 16-47 and the rest): twice the work, more wide pairs (a 4-bit pair
  split 2 + 2 by one halving is often split 1 + 3 by the other).
A half within one bit has an equal 16-bit quarter, so ``halves`` finds a subset of the pairs that
4 x 16-bit ``bands`` find: fewer wide pairs (recall by distance in BENCHMARKS.md), far less work.
``auto`` picks ``bands`` up to ``auto_limit`` hashes and ``halves`` above.
"""

from __future__ import annotations

SCHEMES = ("bands", "halves")
HALF_MASK = (1 << 32) - 1
QUARTER_MASK = (1 << 16) - 1
HALVES = (  # 32-bit halves of phash: high/low, then bits 16-47 and bits 48-63 + 0-15
    f"(phash & {HALF_MASK})",
    f"((phash >> 32) & {HALF_MASK})",
    f"((phash >> 16) & {HALF_MASK})",
    f"(((phash & {QUARTER_MASK}) << 16) | ((phash >> 48) & {QUARTER_MASK}))",
)


def resolve_scheme(scheme: str, n: int, auto_limit: int) -> str:
    """The scheme used for ``n`` hashes: ``scheme`` itself unless it is ``auto``.

    Args:
        scheme: ``auto`` or one of ``SCHEMES``.
        n: the number of hashes grouped.
        auto_limit: the largest ``n`` for which ``auto`` still uses the (quadratic) 16-bit bands.
    """
    if scheme == "auto":
        return "bands" if n <= auto_limit else "halves"
    if scheme not in SCHEMES:
        raise ValueError(f"dedup.scheme: {scheme!r} is not auto or one of {SCHEMES}")
    return scheme


def key_columns(scheme: str, bands: int, halvings: int = 2) -> list[str]:
    """SQL expressions of the key columns that ``scheme`` joins on, computed from ``phash``.

    Args:
        scheme: one of ``SCHEMES``.
        bands: number of equal bands (``bands`` scheme).
        halvings: 1 or 2 ways of cutting the hash into two 32-bit halves (``halves`` scheme).
    """
    cols = []
    if scheme == "bands":
        width = 64 // bands
        mask = (1 << width) - 1
        cols += [f"((phash >> {i * width}) & {mask}) AS b{i}" for i in range(bands)]
    if scheme == "halves":
        cols += [f"{expr} AS h{i}" for i, expr in enumerate(HALVES[:2 * halvings])]
    return cols


def match_sql(left: str, right: str, scheme: str, bands: int, threshold: int, extra: str = "",
              halvings: int = 2) -> str:
    """Rows (key, other, distance) of every candidate pair of ``left`` (alias a) and ``right`` (alias b)
    within ``threshold`` bits; a pair may appear more than once (one row per key column it shares).

    Args:
        left: a table or subquery with key, phash and the key columns (the probing side).
        right: the same for the other side (built into the hash table: the smaller or equal one).
        scheme: one of ``SCHEMES``.
        bands: number of equal bands.
        threshold: the Hamming threshold.
        extra: an extra join condition on a and b (e.g. ``AND b.key < a.key``).
        halvings: 1 or 2 ways of halving the hash (``halves`` scheme).
    """
    verify = "bit_count(xor(a.phash, b.phash))"
    select = f"SELECT a.key, b.key AS other, {verify} AS distance"
    parts = []
    if scheme == "bands":
        parts += [f"{select} FROM {left} a JOIN {right} b ON a.b{i} = b.b{i} {extra} WHERE {verify} <= {threshold}"
                  for i in range(bands)]
    if scheme == "halves":
        for i in range(2 * halvings):  # f = 32 probes the half itself, f < 32 the half with bit f flipped
            probes = (f"(SELECT a.key, a.phash, xor(a.h{i}, CASE WHEN f < 32 THEN 1::BIGINT << f ELSE 0 END) "
                      f"AS probe FROM {left} a, range(33) t(f))")
            parts.append(f"{select} FROM {probes} a JOIN {right} b ON a.probe = b.h{i} {extra} "
                         f"WHERE {verify} <= {threshold}")
    return " UNION ALL ".join(parts)
