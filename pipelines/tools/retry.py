"""``regionset retry OUT``: re-attempt only the ledger rows whose failure is worth retrying.

Retryable: timeouts, connection resets/refusals, truncated transfers, HTTP 5xx and 429. Rows that
succeeded, or failed for good (404, not an image, refused by the SSRF guard), are left untouched.
Retried rows are merged into their ``images`` shard in place (same keys, same order), the download
marker is updated so a later build does not re-download, and downstream stages see a changed input
and redo exactly those shards.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import pyarrow as pa
import yaml

from regionset.common.typed_config import apply_overrides, from_dict
from regionset.pipelines.config import BuildConfig
from regionset.pipelines.core.lineage import LINEAGE_FILE
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.shards import (
    list_shards,
    marker_path,
    read_marker,
    read_table,
    shard_path,
    write_marker,
    write_table,
)
from regionset.schemas import IMAGES
from regionset.schemas.tables import STATUS_FAILED
from regionset.stages.download.stage import DownloadStage, ledger_counters

RETRYABLE = re.compile(
    r"timed out|timeout|HTTP Error 5\d\d|HTTP Error 429|reset by peer|Connection refused|"
    r"Remote end closed|IncompleteRead|Temporary failure|RemoteDisconnected|EOF occurred", re.IGNORECASE)


@dataclass
class RetryReport:
    """What a retry did."""

    shards: int = 0
    retried: int = 0
    recovered: int = 0
    still_failing: int = 0


def saved_config(out: Output, overrides: list[str] | None = None) -> BuildConfig:
    """The resolved config of the last build of ``out`` (from regionset.yaml), plus overrides."""
    path = Output.of(out) / LINEAGE_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {out} is not a regionset output folder")
    data = yaml.safe_load(path.read_text())["config"]
    return from_dict(BuildConfig, apply_overrides(data, overrides or []))


def is_retryable(status: str | None, error: str | None) -> bool:
    """Whether a ledger row is a transient failure."""
    return status == STATUS_FAILED and bool(error) and bool(RETRYABLE.search(error))


def retry_failures(out: Output, overrides: list[str] | None = None) -> RetryReport:
    """Re-download the retryable rows of every ``images`` shard of ``out`` and merge them in.

    Args:
        out: the output folder, or an object-store prefix (``s3://…``).
        overrides: ``key=value`` changes to the saved config (e.g. ``download.timeout=30``).
    """
    out = Output.of(out)
    cfg = saved_config(out, overrides)
    stage = DownloadStage(cfg.download)
    report = RetryReport()
    with out.lock():
        for shard in list_shards(out, IMAGES):
            path = shard_path(out, IMAGES, shard)
            table = read_table(path, IMAGES)
            mask = [is_retryable(s, e) for s, e in zip(table.column("status").to_pylist(),
                                                        table.column("error_message").to_pylist())]
            if not any(mask):
                continue
            stage.ensure_setup()
            todo = table.filter(pa.array(mask)).select(["key", "url", "caption"])
            fresh = {r["key"]: r for r in stage.process(todo).to_pylist()}
            stage.take_counters()
            rows = [fresh.get(r["key"], r) for r in table.to_pylist()]
            merged = pa.Table.from_pylist(rows, schema=table.schema.remove_metadata())
            recovered = sum(1 for r in fresh.values() if r["status"] == "success")
            report.shards += 1
            report.retried += len(fresh)
            report.recovered += recovered
            report.still_failing += len(fresh) - recovered
            marker = read_marker(out, stage.name, shard)
            if marker is not None:  # never rewrite a shard under its marker (killed here: the shard is redone)
                marker_path(out, stage.name, shard).unlink(missing_ok=True)
            sha = write_table(merged, path)
            if marker is not None:  # keep config/input hashes: the download itself stays complete
                previous = marker.counters.get("retry:recovered", 0)
                marker.output_sha256 = sha
                marker.object, marker.size = "", path.stat().st_size  # it vouches for the shard file itself
                marker.counters = dict(sorted(ledger_counters(
                    merged.column("status").to_pylist(), merged.column("error_message").to_pylist()).items()))
                marker.counters["retry:recovered"] = previous + recovered
                write_marker(out, marker)
    return report


def report_dict(r: RetryReport) -> dict:
    """The report as a plain dict."""
    return asdict(r)
