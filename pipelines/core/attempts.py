"""Duplicate attempts of one shard: exactly one marker wins, and it describes the shard file.

A Spark task retry, an Airflow zombie rescheduled, or a Ray retry while the old worker still reaches
the store can run one shard twice at once. Writing both to ``part-NNNNN.parquet`` and then each its
marker could leave attempt A's marker over attempt B's bytes. So an attempt:

1. writes its bytes to an attempt object of its own, named by their sha256 (``shards.attempt_path``);
2. commits its marker conditionally (``commit_marker``): created only if absent, or swapped only for the
   version of a stale marker it read (an earlier config or input); a marker of the same config and
   input hashes that still vouches for an object means another attempt won, and this one loses;
3. the winner's object is copied to ``part-NNNNN.parquet`` (its sha256 checked) and then removed
   (``promote``); a loser removes its own object (unless it made the very same bytes) and makes sure
   the copy happened, then reports the winner's marker.

A crash between 2 and 3 leaves a marker naming an attempt object: the next plan copies it
(``settle``). Attempt objects that no marker names (a loser or an attempt killed before its marker)
are removed at the next build's start (``clean_attempts``, from ``cleanup.clean_temp_files`` in
``begin_build``, which an Airflow run's ``prepare`` task runs too). ``regionset retry`` rewrites
``images`` shards itself, under the lock, with a marker that names the shard file (``object`` empty).

The conditional commit is a compare-and-swap on S3 (``If-None-Match`` / ``If-Match``) and ``memory://``
(``common/conditional.py``), and a read-decide-write under an ``flock`` on a local folder; on other
stores it falls back to an unconditional write (preflight's exclusive-create probe speaks for them).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa

from regionset.common.conditional import (
    ConditionalWriteUnsupported,
    put_if_absent,
    put_if_version,
    read_versioned,
)
from regionset.common.storage import RemotePath, is_remote
from regionset.pipelines.core.fence import check_commit
from regionset.pipelines.core.shards import (
    Marker,
    _atomic_target,
    attempt_path,
    attempts_folder,
    encode_table,
    marker_path,
    read_marker,
    remember_sha256,
    shard_path,
    write_json,
)

COMMIT_TRIES = 5
"""Compare-and-swap rounds of one marker commit (each loses only to a write that landed in between)."""

_ATTEMPT_RE = re.compile(r"^part-(\d{5,})\.[0-9a-f]{16}\.parquet$")  # ``shards.attempt_path``'s names
LOCK_NAME = ".commit.lock"
LOCK_WAIT_S = 60.0
"""Longest wait for the local commit lock of a stage's markers (held for one read and one write)."""  # local folders: ``_state/<stage>/.commit.lock`` serialises marker commits


class AttemptError(RuntimeError):
    """A shard's committed object cannot be put in place (the winner's attempt object and the shard are gone)."""


def attempt_rel(out: Path | RemotePath, path: Path | RemotePath) -> str:
    """``path`` relative to the output's root, as a marker names it.

    Args:
        out: the output's root.
        path: an attempt object under it.
    """
    return str(path.relative_to(out)) if is_remote(out) else Path(path).relative_to(out).as_posix()


def write_attempt(table: pa.Table, out: Path | RemotePath, folder: str, shard: int,
                  row_group_rows: int) -> tuple[Path | RemotePath, str, int]:
    """Write one attempt's bytes to its attempt object; return ``(path, sha256, size)``.

    Args:
        table: the shard's rows (validated).
        out: the output's root.
        folder: the table folder the shard belongs to.
        shard: the shard id.
        row_group_rows: rows per Parquet row group.
    """
    data = encode_table(table, row_group_rows)
    sha = hashlib.sha256(data).hexdigest()
    path = attempt_path(out, folder, shard, sha)
    check_commit(path)
    _put(path, data)
    return path, sha, len(data)


def _put(path: Path | RemotePath, data: bytes) -> None:
    """Write ``data`` whole: one verified PUT, or temp file + fsync + rename."""
    if is_remote(path):
        path.write_bytes(data)
        return
    tmp = _atomic_target(Path(path))
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _backed(out: Path | RemotePath, marker: Marker, folder: str) -> bool:
    """Whether a marker still vouches for an object: its attempt object, or the shard file itself."""
    if marker.object and (out / marker.object).exists():
        return True
    path = shard_path(out, folder, marker.shard)
    return path.exists() and (marker.size < 0 or path.stat().st_size == marker.size)


def _same_work(a: Marker, b: Marker) -> bool:
    return (a.stage, a.shard, a.config_hash, a.input_hash) == (b.stage, b.shard, b.config_hash, b.input_hash)


def _parse(data: bytes | str) -> Marker | None:
    try:
        return Marker(**json.loads(data))
    except (ValueError, TypeError):
        return None  # a torn or foreign marker is stale


def _encode(marker: Marker) -> bytes:
    return json.dumps(asdict(marker), indent=2, sort_keys=True, default=str).encode()


def commit_marker(out: Path | RemotePath, marker: Marker, folder: str) -> Marker:
    """Commit ``marker`` unless another attempt of the same work already did; return the marker that
    stands (``marker`` when this attempt won, the other attempt's when it lost).

    Args:
        out: the output's root.
        marker: this attempt's marker (naming its attempt object).
        folder: the table folder the shard belongs to.
    """
    path = marker_path(out, marker.stage, marker.shard)
    if not is_remote(out):
        with _local_commit_lock(Path(path).parent):
            current = _read_local(Path(path))
            if current is not None and _same_work(current, marker) and _backed(out, current, folder):
                return current
            write_json(asdict(marker), path)
            return marker
    for _ in range(COMMIT_TRIES):
        try:
            found = read_versioned(path)
        except ConditionalWriteUnsupported:
            write_json(asdict(marker), path)  # no conditional write on this store (see the module doc)
            return marker
        current = _parse(found[0]) if found is not None else None
        if current is not None and _same_work(current, marker) and _backed(out, current, folder):
            return current
        check_commit(path)
        won = put_if_absent(path, _encode(marker)) if found is None else put_if_version(path, _encode(marker), found[1])
        if won is not None:
            return marker
    raise AttemptError(f"marker {path}: {COMMIT_TRIES} conditional commits lost to other writers in a row")


def _read_local(path: Path) -> Marker | None:
    try:
        return _parse(path.read_text())
    except OSError:
        return None


@contextmanager
def _local_commit_lock(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:  # bounded: a holder stopped mid-commit (SIGSTOP) ends this attempt, not hangs it
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when its holder's process dies
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AttemptError(f"{folder / LOCK_NAME}: held by another attempt for over "
                                       f"{LOCK_WAIT_S:.0f} s (a marker commit takes milliseconds)") from None
                time.sleep(0.005)
        yield
    finally:
        os.close(fd)


def promote(out: Path | RemotePath, marker: Marker, folder: str) -> None:
    """Put the object ``marker`` names in place as the shard file, then remove the attempt object: a
    rename on local disk; on an object store a GET (its sha256 checked), a verified PUT and a DELETE.
    Idempotent: any attempt, or a later plan, may do it; when the attempt object is gone already, the
    copy was made.

    Args:
        out: the output's root.
        marker: the committed marker.
        folder: the table folder the shard belongs to.
    """
    if not marker.object:
        return  # a marker from before attempt objects: its shard file is the object
    src, dst = out / marker.object, shard_path(out, folder, marker.shard)
    if not is_remote(out):
        check_commit(dst)
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(src, dst)  # a rename: the attempt file was written whole and fsynced, named by its sha256
        except FileNotFoundError:
            if not _backed(out, marker, folder):
                raise AttemptError(f"{dst}: neither the shard nor the attempt file {src} its marker names exists") \
                    from None
        return
    try:
        data = src.read_bytes()
    except FileNotFoundError:
        if not _backed(out, marker, folder):
            raise AttemptError(f"{dst}: neither the shard nor the attempt object {src} its marker names exists") \
                from None
        return
    if hashlib.sha256(data).hexdigest() != marker.output_sha256:
        raise AttemptError(f"{src}: its bytes do not have the sha256 its marker names")
    check_commit(dst)
    _put(dst, data)
    remember_sha256(dst, marker.output_sha256)
    src.unlink(missing_ok=True)


def discard(out: Path | RemotePath, mine: Path | RemotePath, winner: Marker) -> None:
    """A losing attempt removes its attempt object (unless it is the winner's: the same bytes).

    Args:
        out: the output's root.
        mine: this attempt's object.
        winner: the marker that stands.
    """
    if attempt_rel(out, mine) != winner.object:
        mine.unlink(missing_ok=True)


def settle(out: Path | RemotePath, marker: Marker, folder: str, staged: set[str] | None = None) -> None:
    """At planning: finish a commit that stopped between its marker and the copy (roll forward).

    Args:
        out: the output's root.
        marker: the shard's committed marker.
        folder: the table folder the shard belongs to.
        staged: names of the attempt objects present under ``folder`` (one listing on an object
            store); None checks this marker's object on its own.
    """
    if not marker.object:
        return
    present = (marker.object.rsplit("/", 1)[-1] in staged) if staged is not None else (out / marker.object).exists()
    if present:
        promote(out, marker, folder)


def staged_names(out: Path | RemotePath, folder: str) -> set[str]:
    """Names of the attempt objects of a table folder (one listing)."""
    d = attempts_folder(out) / folder
    if not is_remote(d) and not Path(d).is_dir():
        return set()
    return {p.name for p in d.iterdir()}


def clean_attempts(out: Path | RemotePath, producers: dict[str, str]) -> int:
    """At a build's start: remove attempt objects that no marker names (a losing attempt that died
    before removing its object, or an attempt killed before its marker); return how many.

    Args:
        out: the output's root.
        producers: table folder -> the stage that writes it.
    """
    n = 0
    for folder, stage in producers.items():
        for name in sorted(staged_names(out, folder)):
            named = _ATTEMPT_RE.match(name)
            if named is None and not (name.startswith(".part-") and name.endswith(".tmp")):
                continue  # not an attempt object (a nested table folder's prefix)
            path = attempts_folder(out) / folder / name
            marker = read_marker(out, stage, int(named.group(1))) if named is not None else None
            if marker is None or marker.object != attempt_rel(out, path):
                path.unlink(missing_ok=True)
                n += 1
    return n
