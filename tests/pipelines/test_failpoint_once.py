"""The fire-once test fault: ``REGIONSET_FAILPOINT_ONCE=<file>`` makes a failpoint fire only while the
file exists, once (the Airflow retry test relies on the retried task passing the point)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

CODE = "from regionset.pipelines.core.failpoints import failpoint; failpoint('here'); print('passed')"


def _run(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CODE], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120)


def test_fires_once_while_armed_then_passes(tmp_path):
    armed = tmp_path / "armed"
    env = {"REGIONSET_FAILPOINT": "here", "REGIONSET_FAILPOINT_ONCE": str(armed)}
    assert _run(env).stdout.strip() == "passed"  # not armed: passes
    armed.write_text("x")
    first = _run(env)
    assert first.returncode == -signal.SIGKILL and not armed.exists()
    assert _run(env).stdout.strip() == "passed"  # fired once: the retry passes


def test_without_once_it_fires_every_time(tmp_path):
    for _ in range(2):
        assert _run({"REGIONSET_FAILPOINT": "here", "REGIONSET_FAILPOINT_ONCE": ""}).returncode == -signal.SIGKILL
