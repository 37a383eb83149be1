"""A point where a test can SIGKILL a training rank (``REGIONSET_TRAIN_FAILPOINT=STEP:RANK`` or ``STEP``).

The elastic-restart tests kill a real rank right after optimizer step ``STEP`` (and the checkpoint
of that step, if one is due): rank ``RANK``, or with ``STEP`` alone every rank whose environment
has it (one host's ranks, whatever global ranks the rendezvous gave them), on the first attempt only: under ``torchrun --max-restarts N`` the
restarted attempt (``TORCHELASTIC_RESTART_COUNT`` > 0) runs through. With
``REGIONSET_TRAIN_FAILPOINT_SIGNAL=STOP`` the rank stops (SIGSTOP) instead: it stays there, and
holds the other ranks at the next collective, until the test kills its host. Unset, it costs one
environment lookup per step.
"""

from __future__ import annotations

import os
import signal

ENV = "REGIONSET_TRAIN_FAILPOINT"
SIGNAL_ENV = "REGIONSET_TRAIN_FAILPOINT_SIGNAL"


def train_failpoint(step: int, rank: int) -> None:
    """SIGKILL (or SIGSTOP) this process if the failpoint names this step and rank on a first attempt."""
    spec = os.environ.get(ENV)
    if not spec or os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0":
        return
    if spec in (f"{step}:{rank}", str(step)):
        stop = os.environ.get(SIGNAL_ENV, "KILL").upper() == "STOP"
        os.kill(os.getpid(), signal.SIGSTOP if stop else signal.SIGKILL)
