"""What a killed writer left, removed at a build's start (``clean_temp_files``): temp files on local
disk, unmarked shard objects and uncommitted global-step folders on an object store, and attempt
objects no marker names (``attempts.clean_attempts``)."""

from __future__ import annotations

import shutil
from pathlib import Path

from regionset.common.shard_names import STATE_DIR, shard_id
from regionset.common.storage import RemotePath, is_remote
from regionset.pipelines.core.attempts import clean_attempts


def clean_temp_files(out: Path | RemotePath, producers: dict[str, str] | None = None,
                     commits: dict[str, str] | None = None) -> int:
    """Remove what a killed writer left; return how many files or objects were removed.

    Local disk: temp files (a rename is the commit). Object store: shard objects of a table folder
    with no completion marker of the stage that writes it (``producers``: folder -> stage), since
    the marker is the commit there, and every object of a global step's folder whose completion
    file is missing (``commits``: folder -> completion file relative to ``out``).
    """
    n = clean_attempts(out, producers or {})
    if is_remote(out):
        return n + _clean_unmarked(out, producers or {}) + _clean_uncommitted(out, commits or {})
    for pattern in (".*.tmp", ".*.tmp.wal"):
        for p in list(Path(out).rglob(pattern)):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            n += 1
    return n


def _clean_unmarked(out: RemotePath, producers: dict[str, str]) -> int:
    n = 0
    for folder, stage in producers.items():
        marked = {shard_id(p.name.replace(".json", ".parquet")) for p in (out / STATE_DIR / stage).iterdir()}
        for p in (out / folder).iterdir():
            i = shard_id(p.name)
            if i is not None and i not in marked:
                p.unlink(missing_ok=True)
                n += 1
    return n


def _clean_uncommitted(out: RemotePath, commits: dict[str, str]) -> int:
    n = 0
    for folder, commit in commits.items():
        if (out / commit).exists():
            continue
        for p in (out / folder).rglob("*"):
            p.unlink(missing_ok=True)
            n += 1
    return n
