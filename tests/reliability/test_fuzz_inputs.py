"""Property-based fuzzing of the URL-list readers: (url, caption) text rows or an InputError, never a crash.

Random bytes under every extension, and random tables (random column names and types, nulls,
nesting) written as Parquet, CSV and JSONL. Budgets: the hypothesis profile in tests/conftest.py.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from hypothesis import given
from hypothesis import strategies as st

from regionset.pipelines.core.inputs import InputConfig, InputError, iter_urls

_EXTS = [".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt"]


def _read(path: Path, **kw) -> list | InputError:
    counters: Counter = Counter()
    try:
        rows = list(iter_urls(InputConfig(path=str(path), **kw), counters))
    except InputError as err:
        msg = str(err)
        assert msg and "\n" not in msg, msg
        assert str(path) in msg or "no URLs" in msg, msg
        return err
    assert rows
    for url, cap in rows:
        assert url is None or isinstance(url, str)
        assert cap is None or isinstance(cap, str)
    assert set(counters) <= {"input:replaced_bytes"}
    return rows


def _tmp(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix="regionset-fuzz-")) / name


@given(data=st.binary(max_size=400), ext=st.sampled_from(_EXTS))
def test_random_bytes_under_any_extension(data, ext):
    path = _tmp("urls" + ext)
    path.write_bytes(data)
    _read(path)


@given(prefix=st.sampled_from([b"PAR1", b"url,caption\n", b'{"url": "http://a/1"}\n', b"\xef\xbb\xbf"]),
       data=st.binary(max_size=200), ext=st.sampled_from(_EXTS))
def test_plausible_prefix_then_garbage(prefix, data, ext):
    path = _tmp("urls" + ext)
    path.write_bytes(prefix + data + (b"PAR1" if prefix == b"PAR1" else b""))
    _read(path)


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False),
                     st.text(max_size=20))
_JSON = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                     max_leaves=6)
_NAMES = st.sampled_from(["url", "caption", "URL", "x", "", "url ", "caption"])


@given(rows=st.lists(st.dictionaries(_NAMES, _JSON, max_size=4), max_size=6),
       blank=st.booleans(), tail=st.sampled_from(["", "\n", "\n\n", "garbage"]))
def test_random_jsonl(rows, blank, tail):
    path = _tmp("urls.jsonl")
    lines = [json.dumps(r) for r in rows]
    if blank and lines:
        lines.insert(len(lines) // 2, "")
    path.write_text("\n".join(lines) + tail)
    _read(path)


_ARROW_TYPES = {
    "string": (pa.string(), st.text(max_size=20)), "int64": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "float64": (pa.float64(), st.floats()), "bool": (pa.bool_(), st.booleans()),
    "binary": (pa.binary(), st.binary(max_size=12)), "list": (pa.list_(pa.string()), st.lists(st.text(max_size=5))),
    "struct": (pa.struct([("a", pa.int32())]), st.builds(lambda a: {"a": a}, st.integers(-5, 5))),
    "date": (pa.date32(), st.dates()), "null": (pa.null(), st.none()),
}


@st.composite
def _tables(draw) -> pa.Table:
    n = draw(st.integers(0, 5))
    names = draw(st.lists(_NAMES, min_size=1, max_size=3, unique=True))
    cols = {}
    for name in names:
        typ, values = _ARROW_TYPES[draw(st.sampled_from(sorted(_ARROW_TYPES)))]
        cols[name] = pa.array(draw(st.lists(st.one_of(st.none(), values), min_size=n, max_size=n)), typ)
    return pa.table(cols)


@given(table=_tables())
def test_random_parquet(table):
    path = _tmp("urls.parquet")
    pq.write_table(table, path)
    _read(path)


@given(table=_tables(), tsv=st.booleans())
def test_random_csv(table, tsv):
    path = _tmp("urls.tsv" if tsv else "urls.csv")
    flat = table.select([i for i, f in enumerate(table.schema)  # what write_csv can write (raw bytes: above)
                         if not (pa.types.is_nested(f.type) or pa.types.is_binary(f.type))])
    if flat.num_columns == 0:
        return
    pacsv.write_csv(flat, path, pacsv.WriteOptions(delimiter="\t" if tsv else ","))
    _read(path)


@given(table=_tables(), url_col=_NAMES, caption_col=_NAMES)
def test_random_column_choice(table, url_col, caption_col):
    path = _tmp("urls.parquet")
    pq.write_table(table, path)
    _read(path, url_col=url_col, caption_col=caption_col)
