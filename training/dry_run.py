"""``regionset train KIND CONFIG --dry-run``: what a run would train on and resume from, without training.

Prints the run's config hash, the lineage of its data (:func:`regionset.training.lineage.data_lineage`)
and the resume decision (the checkpoint it would continue from, with that checkpoint's step and
lineage), reading only listings, footers, markers and JSON files: no model is built.
"""

from __future__ import annotations

from regionset.training.data import shard_view
from regionset.training.lineage import config_hash, data_lineage
from regionset.training.loop import LoopConfig, resume_point


def describe_run(kind: str, config: dict, train_dir: str, loop: LoopConfig, build_run: str = "") -> dict:
    """The facts a dry run prints.

    Args:
        kind: ``rice`` or ``croc``.
        config: the resolved config as a dict.
        train_dir: the train shards' folder.
        loop: the loop settings (``out_dir``, ``resume``).
        build_run: the build run to name in the lineage (``data.build_run``); empty: the newest.
    """
    view = shard_view(train_dir) if train_dir else None  # Croc on conversations may have no shards
    found, saved = resume_point(loop)
    return {
        "dry_run": True, "kind": kind, "config_hash": config_hash(config), "out_dir": loop.out_dir,
        "lineage": data_lineage(view.paths, view.rows, build_run) if view else data_lineage([], []),
        "resume_from": found, "resume_step": saved["step"] if saved else 0,
        "resume_lineage": saved.get("lineage") if saved else None,
    }
