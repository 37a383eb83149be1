"""Shared fixtures: offline environment, a loopback HTTP server, tiny images."""

from __future__ import annotations

import io
import os
import tempfile

import pytest

from regionset.common.offline import set_offline_defaults

_TMP = tempfile.mkdtemp(prefix="regionset-test-env-")
os.environ.setdefault("YOLO_CONFIG_DIR", _TMP)
os.environ.setdefault("MPLCONFIGDIR", _TMP)
set_offline_defaults()  # the same switches the CLI and the models package set


@pytest.fixture
def server():
    """A loopback HTTP server (regionset.pipelines.tools.demo.server.LoopbackServer), started and stopped."""
    from regionset.pipelines.tools.demo.server import LoopbackServer

    with LoopbackServer() as s:
        yield s


def make_jpeg(width: int, height: int, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A solid-colour JPEG of the given size."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def make_png(width: int, height: int, color: tuple[int, int, int] = (30, 30, 200)) -> bytes:
    """A solid-colour PNG of the given size."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


try:  # fuzz budgets (tests/reliability/test_fuzz_*.py): `--hypothesis-profile=slow` runs 20x more examples
    from hypothesis import HealthCheck, settings

    _FUZZ = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]}
    settings.register_profile("regionset", max_examples=60, **_FUZZ)
    settings.register_profile("slow", max_examples=1200, **_FUZZ)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "regionset"))
except ImportError:  # hypothesis is a dev extra
    pass
