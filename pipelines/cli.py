"""The ``regionset`` command line (ARCHITECTURE §5)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

_OFFLINE_ENV = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "False", "HF_HUB_OFFLINE": "1",
                "NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled"}


def _quiet_env() -> None:
    for k, v in _OFFLINE_ENV.items():
        os.environ.setdefault(k, v)
    tmp = Path(tempfile.gettempdir()) / "regionset-config"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(tmp))
    os.environ.setdefault("MPLCONFIGDIR", str(tmp))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="regionset", description="Image URLs -> labelled region datasets -> training.")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="offline end to end on sample images served on loopback")
    d.add_argument("--out", default="regionset-demo", help="output folder (default ./regionset-demo)")
    d.add_argument("--limit", type=int, default=None, help="use only the first N sample images")
    d.add_argument("overrides", nargs="*", help="config overrides key=value")
    b = sub.add_parser("build", help="run the pipeline of a config file")
    b.add_argument("config", help="YAML config")
    b.add_argument("overrides", nargs="*", help="config overrides key=value")
    s = sub.add_parser("status", help="stage x shard progress and failures")
    s.add_argument("out")
    s.add_argument("--json", action="store_true")
    q = sub.add_parser("sql", help="run SQL on the catalog")
    q.add_argument("out")
    q.add_argument("query")
    q.add_argument("--limit", type=int, default=50, help="rows to print")
    c = sub.add_parser("catalog", help="(re)build OUT/catalog.duckdb")
    c.add_argument("out")
    t = sub.add_parser("train", help="train RICE or Croc off OUT/train shards")
    t.add_argument("kind", choices=["rice", "croc"])
    t.add_argument("config")
    t.add_argument("overrides", nargs="*")
    return p


def _sql(out: str, query: str, limit: int) -> None:
    from pipelines.catalog import connect
    from pipelines.progress import print_table

    con = connect(Path(out))
    try:
        cur = con.execute(query)
        cols = [d[0] for d in cur.description] if cur.description else []
        rows = cur.fetchmany(limit)
    finally:
        con.close()
    print_table(query if len(query) < 100 else query[:97] + "...", cols, rows)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``regionset`` console script; returns the exit code."""
    _quiet_env()
    args = _parser().parse_args(argv)
    from pipelines.inputs import InputError
    from pipelines.lock import LockedError
    from pipelines.typed_config import ConfigError

    try:
        if args.cmd == "demo":
            from pipelines.demo.run import run_demo

            run_demo(args.out, args.limit, extra=args.overrides)
        elif args.cmd == "build":
            from pipelines.build import build
            from pipelines.config import load_config

            build(load_config(args.config, args.overrides))
        elif args.cmd == "status":
            from pipelines.status import print_status

            print_status(Path(args.out), as_json=args.json)
        elif args.cmd == "sql":
            _sql(args.out, args.query, args.limit)
        elif args.cmd == "catalog":
            from pipelines.catalog import build_catalog

            print(build_catalog(Path(args.out)))
        elif args.cmd == "train":
            from training.cli import run_training  # the only place pipelines touch training, lazily

            run_training(args.kind, args.config, args.overrides)
    except (ConfigError, InputError, LockedError, FileNotFoundError) as err:
        print(f"regionset {args.cmd}: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        if type(err).__module__.startswith("duckdb"):
            print(f"regionset {args.cmd}: error: {err}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
