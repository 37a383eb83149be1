"""Named points where a test can SIGKILL the running build (``REGIONSET_FAILPOINT=<name>``).

The kill-and-resume tests use them to stop a real ``regionset build`` process at exact moments
(mid-shard, between an output file and its marker, during k-means, during the catalog swap). Unset,
a failpoint costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "REGIONSET_FAILPOINT"


def failpoint(name: str) -> None:
    """SIGKILL this process if ``REGIONSET_FAILPOINT`` names this point."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
