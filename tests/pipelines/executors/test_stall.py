"""``executor.stall_timeout`` (``pipelines/executors/stall.py``): a stage whose engine stops
delivering shards ends with ``StallError`` naming the lost nodes instead of waiting forever; items
that keep coming pass through in order, and the engine's errors reach the caller."""

from __future__ import annotations

import threading

import pytest

from regionset.common.typed_config import ConfigError
from regionset.pipelines.config import load_config
from regionset.pipelines.executors.stall import StallError, guarded


def _stuck(first: list[int], release: threading.Event):
    yield from first
    release.wait(30)  # an engine retrying against a dead node (released at teardown)


def test_stall_raises_naming_the_lost_node():
    release = threading.Event()
    got = []
    try:
        with pytest.raises(StallError, match=r"no shard finished for 0.3 s; lost: 10.0.0.7 \(node ab\)"):
            for item in guarded(_stuck([1, 2], release), 0.3, lambda: "10.0.0.7 (node ab)"):
                got.append(item)
    finally:
        release.set()
    assert got == [1, 2]


def test_items_pass_through_and_errors_reach_the_caller():
    assert list(guarded(iter(range(5)), 5.0, lambda: "")) == [0, 1, 2, 3, 4]
    assert list(guarded(iter(range(3)), 0, lambda: "")) == [0, 1, 2]  # 0: no guard

    def failing():
        yield 1
        raise ValueError("engine error")

    with pytest.raises(ValueError, match="engine error"):
        list(guarded(failing(), 5.0, lambda: ""))


def test_stall_timeout_config():
    assert load_config(None, ["executor.stall_timeout=90"]).executor.stall_timeout == 90
    with pytest.raises(ConfigError, match="executor.stall_timeout"):
        load_config(None, ["executor.stall_timeout=-1"])
