"""Property-based fuzzing of the config loader: a BuildConfig or a one-line ConfigError, never a crash.

Documents are built from the real key names (so the fuzz reaches nested sections) mixed with random
keys and values of every YAML type. Budgets: the hypothesis profile in tests/conftest.py.
"""

from __future__ import annotations

import dataclasses
import tempfile
import typing
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st

from regionset.common.typed_config import ConfigError, to_dict
from regionset.pipelines.config import BuildConfig, load_config


def _key_paths(cls: type, prefix: str = "") -> list[str]:
    paths = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        paths.append(prefix + f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            paths.extend(_key_paths(hints[f.name], f"{prefix}{f.name}."))
    return paths


PATHS = _key_paths(BuildConfig)
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=12),
                     st.sampled_from(["local", "ray", "keep_ratio", "jpg", "auto", "download", "1e-3", "http://p:1"]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                       max_leaves=8)


def _load(path: str | None, overrides: list[str] | None = None) -> BuildConfig | None:
    try:
        cfg = load_config(path, overrides)
    except ConfigError as err:
        assert str(err) and "\n" not in str(err), str(err)
        return None
    assert isinstance(cfg, BuildConfig)
    return cfg


def _nest(items: list[tuple[str, object]]) -> dict:
    doc: dict = {}
    for dotted, value in items:
        node = doc
        *parents, last = dotted.split(".")
        for p in parents:
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                nxt = node[p] = {}
            node = nxt
        node[last] = value
    return doc


def _write(text: str | bytes) -> str:
    path = Path(tempfile.mkdtemp(prefix="regionset-fuzz-")) / "build.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    return str(path)


@given(items=st.lists(st.tuples(st.one_of(st.sampled_from(PATHS), st.text(max_size=8)), _VALUES), max_size=8))
def test_random_documents_load_or_say_which_key(items):
    cfg = _load(_write(yaml.safe_dump(_nest(items))))
    if cfg is not None:  # what loads, dumps and loads back to the same config
        assert load_config(_write(yaml.safe_dump(to_dict(cfg), sort_keys=False))) == cfg


@given(text=st.one_of(st.text(max_size=200), st.sampled_from(["a: [", "{", "- x", "? a\n: b", "a: !!python/int 1",
                                                                "&a [*a]", "a: &x 1\nb: *y", "\t- x"])))
def test_random_text_as_config(text):
    _load(_write(text))


@given(data=st.binary(max_size=200))
def test_random_bytes_as_config(data):
    _load(_write(data))


@given(overrides=st.lists(st.builds("{}={}".format, st.one_of(st.sampled_from(PATHS), st.text(max_size=10)),
                                    st.one_of(st.text(max_size=20), _SCALARS.map(str))), max_size=5)
                  | st.lists(st.text(max_size=20), max_size=3))
def test_random_overrides(overrides):
    _load(None, overrides)
