"""What a preflight or doctor check answers: ``Check`` (ok / warn / fail, the config key, one line
saying what to do), and ``PreflightError``, the failure ``regionset build`` stops on (exit 2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from regionset.common import typed_config

Status = Literal["ok", "warn", "fail"]



@dataclass(frozen=True)
class Check:
    """One preflight or doctor result.

    Args:
        name: what was checked (a row label).
        status: ``ok``, ``warn`` or ``fail``.
        key: the config key the check is about (empty for environment checks).
        detail: one line: what was found, and for a failure what to do.
    """

    name: str
    status: Status
    key: str
    detail: str


class PreflightError(typed_config.ConfigError):
    """A preflight check failed: a config key that does not work here (one line naming it and the fix)."""

    def __init__(self, check: Check) -> None:
        self.check = check
        super().__init__(" ".join(check.detail.split()))


def ok(name: str, key: str, detail: str) -> Check:
    """A ``ok`` Check (see ``Check`` for the arguments)."""
    return Check(name, "ok", key, detail)


def warn(name: str, key: str, detail: str) -> Check:
    """A ``warn`` Check (see ``Check`` for the arguments)."""
    return Check(name, "warn", key, detail)


def fail(name: str, key: str, detail: str) -> Check:
    """A ``fail`` Check (see ``Check`` for the arguments)."""
    return Check(name, "fail", key, detail)
