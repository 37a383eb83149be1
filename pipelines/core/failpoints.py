"""Named points where a test can SIGKILL the running build (``REGIONSET_FAILPOINT=<name>``).

The kill-and-resume tests use them to stop a real ``regionset build`` process at exact moments
(mid-shard, between an output file and its marker, during k-means, during the catalog swap). Unset,
a failpoint costs one environment lookup.

Test fault, fire once: with ``REGIONSET_FAILPOINT_ONCE=<file>`` as well, the point fires only while
that file exists, and the process that fires removes it first, so a retried task (an Airflow retry
in ``tests/dags/test_scheduler_local.py``) passes the point the second time.
"""

from __future__ import annotations

import os
import signal

ENV = "REGIONSET_FAILPOINT"
ONCE_ENV = "REGIONSET_FAILPOINT_ONCE"
DUPLICATE_ENV = "REGIONSET_DUPLICATE_ATTEMPT"
"""Stage names (comma-separated, or ``*``) whose every shard a test runs twice, interleaved
(``duplicate_attempt``)."""


def failpoint(name: str) -> None:
    """SIGKILL this process if ``REGIONSET_FAILPOINT`` names this point."""
    if os.environ.get(ENV) == name:
        if os.environ.get(ONCE_ENV):
            try:
                os.remove(os.environ[ONCE_ENV])  # the one process that removes the file fires
            except FileNotFoundError:
                return
        os.kill(os.getpid(), signal.SIGKILL)


def duplicate_attempt(stage: str) -> bool:
    """Whether ``REGIONSET_DUPLICATE_ATTEMPT`` asks to run a second attempt of this stage's shards: the
    test failpoint for duplicate attempts (``pipelines/core/attempts.py``), as a Spark task retry or an
    Airflow zombie would. Unset, it costs one environment lookup.

    Args:
        stage: the stage's name.
    """
    names = os.environ.get(DUPLICATE_ENV)
    return bool(names) and (names == "*" or stage in names.split(","))
