"""The catalog of an object-store output kept on the store: ``s3://…/OUT/catalog.duckdb``.

DuckDB opens only local database files, so a remote output's catalog is built into a local file
(``catalog.catalog_file``) and then uploaded beside the tables: the build's last task may run on a
worker whose disk goes with it, and ``regionset sql`` on any other host reads the store's copy. A
reader downloads it into its own cache when the store's version token (ETag, generation) differs
from the one it downloaded last (``<file>.version`` beside the cached file); the catalog's views read
the Parquet objects by URL, so the copy answers wherever the store's credentials are.
"""

from __future__ import annotations

import os
from pathlib import Path

from regionset.common.files import write_atomic
from regionset.pipelines.core.output import CATALOG_FILE, Output


def _version_file(local: Path) -> Path:
    return local.with_name(local.name + ".version")


def publish(out: Output, local: Path) -> str:
    """Upload the catalog file ``local`` to ``OUT/catalog.duckdb`` (one PUT); return its URL.

    Args:
        out: a remote output.
        local: the built catalog file.
    """
    dest = out / CATALOG_FILE
    write_atomic(dest, local.read_bytes())
    token = out.root.versions().get(CATALOG_FILE)
    if token is not None:  # this file is the store's copy: no download of what was just uploaded
        write_atomic(_version_file(local), token.encode())
    return str(dest)


def fetch(out: Output, local: Path) -> bool:
    """Make ``local`` the store's catalog of ``out`` (downloaded when its version changed); False when
    the store holds no catalog (an output built before catalogs were kept there).

    Args:
        out: a remote output.
        local: the cached catalog file.
    """
    token = out.root.versions().get(CATALOG_FILE, "")
    if token == "":
        return False
    mark = _version_file(local)
    if token is not None and local.exists() and mark.exists() and mark.read_text() == token:
        return True
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f".{local.name}.{os.getpid()}.download")
    tmp.write_bytes((out / CATALOG_FILE).read_bytes())
    os.replace(tmp, local)
    if token is not None:
        write_atomic(mark, token.encode())
    return True
