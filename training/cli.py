"""Command line of training: ``python -m regionset.training.rice CONFIG.yaml [k=v ...]`` and the ``regionset train`` entry point.

``pipelines/cli.py`` imports this lazily for ``regionset train rice|croc CONFIG.yaml``: each kind
is a module ``regionset.training.<kind>.train`` with ``run(config_path, overrides) -> dict``.
"""

from __future__ import annotations

import argparse
import importlib
import json

KINDS = ("rice", "croc")


def run_training(kind: str, config_path: str | None, overrides: list[str] | None = None,
                 dry_run: bool = False) -> dict:
    """Run one training kind; returns its summary.

    Args:
        kind: ``rice`` or ``croc``.
        config_path: YAML config file (None: the kind's defaults).
        overrides: ``section.key=value`` items applied after the file.
        dry_run: return the data lineage and resume decision instead of training.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown training kind {kind!r}; choose one of {list(KINDS)}")
    module = importlib.import_module(f"regionset.training.{kind}.train")
    return module.run(config_path, list(overrides or []), dry_run=dry_run)


def main(argv: list[str] | None = None) -> int:
    """``KIND CONFIG.yaml [key=value ...]``; prints the summary's last log record as JSON.

    Args:
        argv: arguments without the program name (None: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(prog="regionset train", description="train off OUT/train shards")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("config", help="YAML config file")
    parser.add_argument("overrides", nargs="*", help="section.key=value")
    parser.add_argument("--dry-run", action="store_true", help="print the data lineage and resume point; train nothing")
    args = parser.parse_args(argv)
    summary = run_training(args.kind, args.config, args.overrides, dry_run=args.dry_run)
    brief = {k: v for k, v in summary.items() if k != "history"}
    print(json.dumps(brief, default=str))
    return 0
