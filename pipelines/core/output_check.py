"""Is this folder or URL a regionset output? One check for the commands that read one
(``sql``, ``status``, ``report``, ``sample``, ``retry``, ``catalog``), so that a typo or a wrong
bucket is one clear error rather than a table of zeros.

Every build writes ``regionset.yaml`` first (``begin_build``) and its completion markers under
``_state/``; outputs of builds older than ``regionset.yaml`` have ``_state/``, and a local folder
may hold just its ``catalog.duckdb`` (which ``report`` has always accepted). Any of them marks an output.
"""

from __future__ import annotations

from pathlib import Path

from regionset.common.shard_names import STATE_DIR
from regionset.common.storage import RemotePath
from regionset.pipelines.core.lineage import LINEAGE_FILE
from regionset.pipelines.core.output import CATALOG_FILE, Output


class NotAnOutputError(FileNotFoundError):
    """The path holds no regionset output; the message (one line) says what to do."""


def is_output(out: str | Path | RemotePath | Output) -> bool:
    """Whether ``out`` (a local folder or an object-store prefix) holds a regionset output.

    Args:
        out: the folder or URL given to the command.
    """
    root = Output.of(out)
    return (root / LINEAGE_FILE).is_file() or (root / STATE_DIR).is_dir() or (root / CATALOG_FILE).is_file()


def require_output(out: str | Path | RemotePath | Output) -> Output:
    """``out`` as a path, or NotAnOutputError when it holds no regionset output.

    Args:
        out: the folder or URL given to the command.
    """
    root = Output.of(out)  # the command's one Output, handed to what it runs
    if not is_output(root):
        raise NotAnOutputError(f"{out} holds no regionset output (no {LINEAGE_FILE} or {STATE_DIR}/): "
                               f"run regionset build first or check the path")
    return root
