"""common/typed_config.py: renamed keys (``DEPRECATED_KEYS``) map onto their new place, warn once, hash as before."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from regionset.common.typed_config import (
    ConfigError,
    apply_overrides,
    config_warnings,
    flat_dict,
    from_dict,
    to_dict,
)


@dataclass(frozen=True)
class FakeBackend:
    path: str = ""
    size: int = 1


@dataclass(frozen=True)
class FakeSection:
    DEPRECATED_KEYS: ClassVar[dict[str, str]] = {"path": "backend.path", "backend_size": "backend.size"}

    shared: int = 0
    backend: FakeBackend = field(default_factory=FakeBackend)


@dataclass(frozen=True)
class FakeRoot:
    section: FakeSection = field(default_factory=FakeSection)


def test_old_key_maps_onto_the_new_one_with_one_warning():
    cfg = from_dict(FakeRoot, {"section": {"path": "/x", "backend_size": 3}})
    assert cfg == from_dict(FakeRoot, {"section": {"backend": {"path": "/x", "size": 3}}})
    assert config_warnings(cfg) == ["section.path is deprecated: use section.backend.path",
                                    "section.backend_size is deprecated: use section.backend.size"]
    assert config_warnings(FakeRoot()) == []


def test_old_key_as_override():
    data = apply_overrides({}, ["section.path=/y"])
    cfg = from_dict(FakeRoot, data)
    assert cfg.section.backend.path == "/y" and config_warnings(cfg) == [
        "section.path is deprecated: use section.backend.path"]


def test_both_spellings_conflict_names_both():
    with pytest.raises(ConfigError, match=r"section\.path .*section\.backend\.path"):
        from_dict(FakeRoot, {"section": {"path": "/x", "backend": {"path": "/z"}}})
    same = from_dict(FakeRoot, {"section": {"path": "/x", "backend": {"path": "/x"}}})  # same value: fine
    assert same.section.backend.path == "/x"


def test_unknown_key_still_errors_and_input_is_not_edited():
    with pytest.raises(ConfigError, match="unknown config key section.nope"):
        from_dict(FakeRoot, {"section": {"nope": 1}})
    data = {"section": {"path": "/x"}}
    from_dict(FakeRoot, data)
    assert data == {"section": {"path": "/x"}}


def test_flat_dict_puts_moved_keys_back():
    cfg = from_dict(FakeRoot, {"section": {"backend": {"path": "/x"}, "shared": 2}})
    assert flat_dict(cfg) == {"section": {"shared": 2, "path": "/x", "backend_size": 1}}
    assert to_dict(cfg) == {"section": {"shared": 2, "backend": {"path": "/x", "size": 1}}}
