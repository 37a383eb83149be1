"""YAML/dict -> typed dataclasses, with ``key=value`` overrides and errors that name the key.

One loader for the build config (``regionset.pipelines.config``) and the training configs (``training/``).
Supported field types: bool, int, float, str, Literal[...], X | None, list[X], tuple[X, ...],
dict[str, X] and nested dataclasses. Unknown keys and wrong types raise ConfigError.

Renamed keys: a config dataclass may declare ``DEPRECATED_KEYS: ClassVar[dict[str, str]]``, old key
-> its new dotted path inside the same section (``{"det_model_dir": "paddleocr.det_model_dir"}``).
``from_dict`` moves an old key onto the new one (both set to different values is an error naming
both) and remembers one warning per old key on the built instance (``config_warnings``);
``flat_dict`` puts the moved keys back where they were, so that hashes of a config stay as they
were before the rename.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

from regionset.common.storage import as_path

T = TypeVar("T")
_WARNINGS_ATTR = "_config_warnings"  # set on a built instance that was given deprecated keys


def one_line(text: str) -> str:
    """``text`` with every line break or other unprintable character escaped (``\\n``), for one-line errors."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class ConfigError(ValueError):
    """A config value is unknown or of the wrong type; the message (one line) names the key."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(str(message)))


def _type_name(tp: Any) -> str:
    if get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if get_origin(tp) is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{key}: expected one of {list(get_args(tp))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item,) = get_args(tp)[:1] or (Any,)
        items = [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        _, vt = get_args(tp) or (str, Any)
        return {str(k): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected bool, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected int, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 2e-5 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected float, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected str, got {value!r}")
    raise ConfigError(f"{key}: unsupported field type {tp}")


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, recursively, checking every key and type.

    Args:
        cls: the dataclass type.
        data: a mapping, e.g. parsed YAML.
        prefix: dotted path of ``data`` inside the whole config, used in messages.
    """
    data, deprecated = _move_deprecated(cls, data, prefix)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields), key=str)  # YAML keys may be ints, None...
    if unknown:
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]!s}; valid keys under "
            f"{prefix.rstrip('.') or 'top level'}: {sorted(fields)}"
        )
    kwargs = {name: _coerce(value, hints[name], f"{prefix}{name}") for name, value in data.items()}
    obj = cls(**kwargs)
    if deprecated:
        object.__setattr__(obj, _WARNINGS_ATTR, tuple(deprecated))  # frozen: not a field, not hashed
    return obj


def _move_deprecated(cls: type, data: dict[str, Any], prefix: str) -> tuple[dict[str, Any], list[str]]:
    """``data`` with the old keys of ``cls.DEPRECATED_KEYS`` moved to their new paths (copied, not
    edited in place), and one warning per old key found."""
    aliases: dict[str, str] = getattr(cls, "DEPRECATED_KEYS", None) or {}
    if not isinstance(data, dict) or not any(k in aliases for k in data):
        return data, []
    data = dict(data)
    notes = []
    for old, new in aliases.items():
        if old not in data:
            continue
        value = data.pop(old)
        *parents, leaf = new.split(".")
        node = data
        for i, part in enumerate(parents):
            child = node.get(part)
            if child is None:
                child = {}
            elif not isinstance(child, dict):
                section = prefix + ".".join(parents[: i + 1])
                raise ConfigError(f"{section}: expected a mapping (it receives the deprecated {prefix}{old}), "
                                  f"got {child!r}")
            node[part] = dict(child)
            node = node[part]
        if leaf in node and node[leaf] != value:
            raise ConfigError(f"{prefix}{old} (deprecated) and {prefix}{new} are both set, to different values "
                              f"({value!r} and {node[leaf]!r}): keep only {prefix}{new}")
        node[leaf] = value
        notes.append(f"{prefix}{old} is deprecated: use {prefix}{new}")
    return data, notes


def config_warnings(obj: Any) -> list[str]:
    """The deprecation warnings ``from_dict`` recorded while building ``obj`` and its sections.

    Args:
        obj: a config dataclass instance built by ``from_dict`` / ``load_config``.
    """
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        return []
    found = list(getattr(obj, _WARNINGS_ATTR, ()))
    for f in dataclasses.fields(obj):
        found += config_warnings(getattr(obj, f.name))
    return found


def flat_dict(obj: Any) -> Any:
    """Like ``to_dict``, with every key of a ``DEPRECATED_KEYS`` table back at its old place (and
    the sub-sections that held only moved keys dropped), every key of a ``HASH_OMIT_DEFAULT`` tuple
    left out while it holds its default, and every key of a ``NOT_HASHED`` tuple (keys that change
    speed, never the output) left out: the layout hashes were computed on.

    Args:
        obj: a config dataclass instance (or any value ``to_dict`` takes).
    """
    if not (dataclasses.is_dataclass(obj) and not isinstance(obj, type)):
        if isinstance(obj, list | tuple):
            return [flat_dict(v) for v in obj]
        if isinstance(obj, dict):
            return {k: flat_dict(v) for k, v in obj.items()}
        return obj
    out = {f.name: flat_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    for key in getattr(type(obj), "HASH_OMIT_DEFAULT", None) or ():  # keys added later: absent while default
        f = next(f for f in dataclasses.fields(obj) if f.name == key)
        if getattr(obj, key) == f.default:
            del out[key]
    for key in getattr(type(obj), "NOT_HASHED", None) or ():  # throughput only: the output is the same
        out.pop(key, None)
    for old, new in (getattr(type(obj), "DEPRECATED_KEYS", None) or {}).items():
        *parents, leaf = new.split(".")
        nodes = [out]
        for part in parents:
            nodes.append(nodes[-1][part])
        out[old] = nodes[-1].pop(leaf)
        for depth in range(len(parents), 0, -1):  # drop sections emptied by the move
            if not nodes[depth]:
                del nodes[depth - 1][parents[depth - 1]]
    return out


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain dict (tuples become lists), for YAML/JSON output."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a nested dict in place.

    Args:
        data: the nested mapping to edit.
        overrides: items of the form ``dotted.key=value``.
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key}: {part} is not a section")
        node[parts[-1]] = _yaml(raw, f"override {key}") if raw != "" else ""
    return data


def _yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        detail = " ".join(str(getattr(err, "problem", None) or err).split())
        raise ConfigError(f"{where}: not valid YAML{line}: {detail}") from None


def load_config(cls: type[T], path: str | Path | None, overrides: list[str] | None = None) -> T:
    """Load dataclass ``cls`` from a YAML file (defaults when ``path`` is None) plus overrides.

    Args:
        cls: the config dataclass.
        path: a YAML file: a local path or a URL (``s3://…``, any fsspec scheme); None for the defaults.
        overrides: ``key=value`` items applied after the file.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            text = as_path(path).read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path}: not UTF-8 text (byte {err.start})") from None
        loaded = _yaml(text, str(path)) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the config must be a mapping at top level")
        data = loaded
    apply_overrides(data, overrides or [])
    return from_dict(cls, data)
