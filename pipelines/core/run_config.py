"""The config of one orchestrator run, pinned under the output: ``OUT/_state/runs/<run>/config.yaml``.

An orchestrator (the Airflow DAG in ``dags/``) runs a build as many tasks on many workers, each
resolving ``config_path`` (a local path or a URL) plus the run's overrides on its own. The first task
(``prepare``) pins the resolved config beside the run records, with its hash written last
(``config.sha256``, the commit). Every later task resolves its own view again and compares: a config
edited on the store mid-run (or an output moved) fails that task with ``ConfigChangedError``, one line
naming the run and both hashes, instead of building half the shards with one config and half with
another. The hash covers the whole resolved YAML, watched keys (``NOT_HASHED``) included: a run is
one config.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import yaml

from regionset.common.files import write_atomic
from regionset.common.shard_names import STATE_DIR
from regionset.common.typed_config import to_dict
from regionset.pipelines.core.output import Output

RUNS_DIR = "runs"  # ``_state/runs/``: the run records (``<run_id>.json``) and pinned configs (``<run>/``)
CONFIG_FILE = "config.yaml"
HASH_FILE = "config.sha256"


MESSAGE_START = "config changed: run "  # every ConfigChangedError's first words (the DAG's retry policy reads them)


class ConfigChangedError(RuntimeError):
    """A task's view of the run's config differs from the one ``prepare`` pinned (not worth a retry)."""

    def __init__(self, run_id: str, detail: str) -> None:
        super().__init__(f"{MESSAGE_START}{run_id}: {detail}")


def run_folder_name(run_id: str) -> str:
    """The run's folder under ``_state/runs/``: the run id with characters other than letters, digits,
    ``._-`` replaced (Airflow's ``manual__2026-12-07T23:30:00+00:00``), plus a short hash when any was.

    Args:
        run_id: the orchestrator's run id.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)
    return safe if safe == run_id else f"{safe}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


def config_text(cfg: Any) -> str:
    """The resolved config as canonical YAML (sorted keys): what is pinned and hashed."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=True, allow_unicode=True)


def text_hash(text: str) -> str:
    """The first 16 hex digits of the SHA-256 of ``text``."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def pinned_path(out: Output, run_id: str) -> Any:
    """``OUT/_state/runs/<run>/config.yaml`` (a local path or a ``RemotePath``)."""
    return out / STATE_DIR / RUNS_DIR / run_folder_name(run_id) / CONFIG_FILE


def pin_config(out: Output, run_id: str, cfg: Any) -> str:
    """Pin ``cfg`` as the run's config (idempotent: a retry of ``prepare`` with the same config
    rewrites nothing); return its hash.

    Args:
        out: the build's output.
        run_id: the orchestrator's run id.
        cfg: the resolved build config.

    Raises:
        ConfigChangedError: the run already pinned another config (it changed before a retry).
    """
    text = config_text(cfg)
    digest = text_hash(text)
    pinned = pinned_hash(out, run_id)
    if pinned is not None:
        if pinned != digest:
            raise ConfigChangedError(run_id, _mismatch(pinned, digest, out, run_id))
        return digest
    path = pinned_path(out, run_id)
    write_atomic(path, text.encode())
    write_atomic(path.parent / HASH_FILE, (digest + "\n").encode())  # the commit: written last
    return digest


def pinned_hash(out: Output, run_id: str) -> str | None:
    """The hash the run pinned, or None when it pinned nothing under ``out``.

    Args:
        out: the build's output.
        run_id: the orchestrator's run id.
    """
    try:
        return (pinned_path(out, run_id).parent / HASH_FILE).read_text().strip()
    except FileNotFoundError:
        return None


def check_pinned(out: Output, run_id: str, cfg: Any) -> str:
    """Check this task's view ``cfg`` of the run's config against the pinned copy; return the pinned
    YAML's path (what the task then loads).

    Args:
        out: the build's output (``cfg.output``).
        run_id: the orchestrator's run id.
        cfg: this task's resolved config (its ``config_path`` plus overrides).

    Raises:
        ConfigChangedError: one line: no pinned config under this output, the hashes differ, or the
            pinned copy does not match its own hash.
    """
    digest = text_hash(config_text(cfg))
    pinned = pinned_hash(out, run_id)
    path = pinned_path(out, run_id)
    if pinned is None:
        raise ConfigChangedError(run_id, (
            f"this task's config_path + overrides resolve to {digest} with output {out}, where the run "
            f"pinned no config ({path} is missing): the config or its output changed after prepare, or "
            "prepare did not run; trigger a new run"))
    if pinned != digest:
        raise ConfigChangedError(run_id, _mismatch(pinned, digest, out, run_id))
    stored = text_hash(path.read_text())
    if stored != pinned:
        raise ConfigChangedError(run_id, f"the pinned config {path} hashes to {stored}, not the {pinned} "
                                 "recorded beside it; trigger a new run")
    return str(path)


def _mismatch(pinned: str, now: str, out: Output, run_id: str) -> str:
    return (f"prepare pinned config {pinned} ({pinned_path(out, run_id)}), this task's config_path + "
            f"overrides now resolve to {now}; trigger a new run (or restore the config)")
