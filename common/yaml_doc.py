"""A commented YAML starter config, generated from the config dataclasses (``regionset init``).

The values are the dataclass defaults and the comments their docstrings' ``Args:`` entries, so the
defaults and their documentation live in one place: the dataclasses. The output loads back into the
same config (``tests/pipelines/test_config.py``).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import textwrap
from typing import Any

import yaml

from regionset.common.typed_config import to_dict

WIDTH = 100
_ARG = re.compile(r"^(\w+)(?: \([^)]*\))?:\s*(.*)$")


def field_docs(cls: type) -> dict[str, str]:
    """The ``Args:`` entries of a dataclass's docstring, by field name (continuation lines joined).

    Args:
        cls: a dataclass type.
    """
    doc = inspect.getdoc(cls) or ""
    docs: dict[str, str] = {}
    lines = doc.split("\n")
    if "Args:" not in lines:
        return docs
    name, indent = None, None
    for line in lines[lines.index("Args:") + 1:]:
        if not line.strip():
            break
        depth = len(line) - len(line.lstrip())
        match = _ARG.match(line.strip())
        if match and (indent is None or depth <= indent):
            indent, name = depth, match.group(1)
            docs[name] = match.group(2)
        elif name is not None and depth > (indent or 0):
            docs[name] += " " + line.strip()
        else:
            break
    return docs


def _summary(cls: type) -> str:
    return (inspect.getdoc(cls) or cls.__name__).split("\n")[0]


def _comment(text: str, pad: str) -> list[str]:
    return [f"{pad}# {line}" for line in textwrap.wrap(text, WIDTH - len(pad) - 2)]


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _lines(obj: Any, depth: int) -> list[str]:
    pad = "  " * depth
    docs = field_docs(type(obj))
    out: list[str] = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        doc = docs.get(f.name) or f.metadata.get("doc", "")
        if dataclasses.is_dataclass(value):
            out += _comment(doc or _summary(type(value)), pad)
            out.append(f"{pad}{f.name}:")
            out += _lines(value, depth + 1)
        else:
            out += _comment(doc, pad) if doc else []
            out.append(f"{pad}{f.name}: {_scalar(to_dict(value))}")
    return out


def commented_yaml(config: Any, title: str = "") -> str:
    """The YAML of a config dataclass instance, every section and key, each with its docs as comments.

    Args:
        config: a config dataclass instance (e.g. ``BuildConfig()``: every default).
        title: comment lines put first.
    """
    head = [f"# {line}".rstrip() for line in title.splitlines()] if title else []
    return "\n".join(head + _lines(config, 0)) + "\n"
