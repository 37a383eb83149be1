"""What the ``regionset`` and ``regionset_train`` DAGs share: regionset's interpreter and the Assets.

Imported by the two DAG files as a plain module: Airflow puts the dags folder (the DAG bundle's
path) on ``sys.path`` where it parses DAGs and where it runs tasks. Like the DAG files it imports only
the standard library and ``airflow.sdk``: Airflow parses it without regionset installed.

Assets. A build's output is chosen per run (its config), so no Asset URI is known when the DAG is
parsed: the build's ``catalog`` task declares the aliases ``regionset-train`` and
``regionset-regions`` as outlets and, when the build committed, its ``post_execute`` hook attaches an
event for the output's concrete Assets to them: ``OUT/train`` and ``OUT/regions`` as Asset URIs
(``s3://bucket/out/train`` stays as it is; a local folder becomes ``file:///abs/out/train``), with
the run id, config hash, shard and row counts as the event's extra. Airflow creates each Asset on
its first event; ``regionset_train`` is scheduled on the train alias.
"""

from __future__ import annotations

import os
import shutil
import sys
import urllib.parse
from pathlib import Path

from airflow.sdk import Asset, AssetAlias

TRAIN_ALIAS = AssetAlias("regionset-train")
REGIONS_ALIAS = AssetAlias("regionset-regions")
EXTRA_KEYS = ("run_id", "config_hash", "output", "shards", "rows")  # an event's extra, from the commit task


def default_regionset_python() -> str:
    """``$REGIONSET_PYTHON``, else the interpreter ``install_airflow.sh`` recorded, else ``python3``."""
    if os.environ.get("REGIONSET_PYTHON"):
        return os.environ["REGIONSET_PYTHON"]
    recorded = Path(sys.prefix) / "regionset-python"
    if recorded.is_file():
        return recorded.read_text().strip()
    return shutil.which("python3") or "python3"


# Rendered natively (render_template_as_native_obj): lists stay lists, booleans stay booleans.
PYTHON = ("{{ params.regionset_python or var.value.get('regionset_python', "
          + repr(default_regionset_python()) + ") }}")


def asset_uri(url: str) -> str:
    """The Asset URI of a folder: a URL (``s3://…``) as it is, a local path as an absolute ``file://`` URI."""
    if "://" in url:
        return url.rstrip("/")
    return Path(url).resolve().as_uri()


def url_of(uri: str) -> str:
    """The folder an Asset URI names, as regionset reads it: a ``file://`` URI's path, else the URL."""
    parsed = urllib.parse.urlsplit(uri)
    return urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else uri


def report_lineage(task: object, inputs: list[str], outputs: list[str], collector: object = None) -> None:
    """Report a task's concrete input and output folders (Asset URIs) to Airflow's hook-lineage
    collector, which lineage readers such as the OpenLineage provider read when the task ends
    (without a reader Airflow's collector does nothing).

    Args:
        task: the running task (the lineage entries' context).
        inputs: Asset URIs read.
        outputs: Asset URIs written.
        collector: the collector (default: Airflow's).
    """
    if collector is None:
        from airflow.sdk.lineage import get_hook_lineage_collector

        collector = get_hook_lineage_collector()
    for uri in inputs:
        collector.add_input_asset(context=task, uri=uri)
    for uri in outputs:
        collector.add_output_asset(context=task, uri=uri)


def announce_build(context: dict, result: dict, collector: object = None) -> None:
    """``post_execute`` of the build's commit task: asset events for ``train/`` and ``regions/``.

    ``result`` is what ``regionset.pipelines.tasks.committed_outputs`` returned in regionset's
    interpreter. Nothing is announced unless ``committed`` (every shard of every step marked and the
    run recorded): a partial build is logged and leaves the Assets as they were. The two folders are
    also reported as the task's outputs to the hook-lineage collector (``report_lineage``).
    """
    if not result.get("committed"):
        print(f"regionset: build not committed (shards without a marker: {result.get('missing')}); "
              "no asset events", file=sys.stderr)
        return
    extra = {key: result.get(key) for key in EXTRA_KEYS}
    train, regions = asset_uri(result["train"]), asset_uri(result["regions"])
    events = context["outlet_events"]
    events[TRAIN_ALIAS].add(Asset(train), extra={**extra, "table": "train"})
    events[REGIONS_ALIAS].add(Asset(regions), extra={**extra, "table": "regions"})
    report_lineage(context.get("task"), [], [train, regions], collector)


def announce_training(context: dict, result: dict, collector: object = None) -> None:
    """``post_execute`` of ``regionset_train``'s ``train`` task: its ``train/`` input and checkpoint
    folder output to the hook-lineage collector (``report_lineage``)."""
    outputs = [asset_uri(result["out_dir"])] if result.get("out_dir") else []
    report_lineage(context.get("task"), [asset_uri(result["train_dir"])], outputs, collector)


def build_of(context: dict) -> dict:
    """The build a ``regionset_train`` run trains on: the train Asset event that triggered it, or (a
    manual run) the newest event of the train alias. Its ``train_url``, ``build_run`` and the event's extra.

    Raises:
        LookupError: no build has announced its ``train/`` Asset yet.
    """
    try:
        events = list(context["triggering_asset_events"][TRAIN_ALIAS])
    except KeyError:  # a manual run (or one started by another Asset)
        events = []
    if not events:
        events = list(context["inlet_events"][TRAIN_ALIAS])
    if not events:
        raise LookupError("no regionset-train asset event yet: run the regionset build DAG first")
    event = max(events, key=lambda e: e.timestamp)
    extra = dict(event.extra or {})
    return {"train_url": url_of(event.asset.uri), "build_run": extra.get("run_id") or event.source_run_id,
            "config_hash": extra.get("config_hash"), "rows": extra.get("rows"), "asset_uri": event.asset.uri}
