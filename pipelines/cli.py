"""The ``regionset`` command line (README "Command line")."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from regionset.common.offline import set_offline_defaults
from regionset.common.storage import as_path
from regionset.pipelines.executors.stall import StallError

if TYPE_CHECKING:  # the CLI imports lazily for start-up
    from regionset.pipelines.core.output import Output


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="regionset", description="Image URLs -> labelled region datasets -> training.")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="offline end to end on sample images served on loopback")
    d.add_argument("--out", default="regionset-demo", help="output folder (default ./regionset-demo)")
    d.add_argument("--limit", type=int, default=None, help="use only the first N sample images")
    d.add_argument("overrides", nargs="*", help="config overrides key=value")
    b = sub.add_parser("build", help="run the pipeline of a config file and/or key=value settings")
    b.add_argument("config", nargs="?", default=None, help="YAML config (optional)")
    b.add_argument("overrides", nargs="*", help="config overrides key=value")
    b.add_argument("--debug", action="store_true", help="show the stack trace of a failed check")
    dr = sub.add_parser("doctor", help="check the environment and a config's executor, models and output")
    dr.add_argument("config", nargs="?", default=None, help="YAML config (optional)")
    dr.add_argument("overrides", nargs="*", help="config overrides key=value")
    dr.add_argument("--debug", action="store_true", help="show stack traces")
    i = sub.add_parser("init", help="write a commented starter config with every section and default")
    i.add_argument("file", nargs="?", default="build.yaml", help="where to write it (default build.yaml; - = stdout)")
    i.add_argument("--force", action="store_true", help="overwrite an existing file")
    k = sub.add_parser("config", help="print the resolved config (defaults + file + overrides) as YAML")
    k.add_argument("config", nargs="?", default=None, help="YAML config (optional)")
    k.add_argument("overrides", nargs="*", help="config overrides key=value")
    e = sub.add_parser("estimate", help="measure a sample of the input, project time, cost and bytes for N images")
    e.add_argument("config", nargs="?", default=None, help="YAML config (optional)")
    e.add_argument("overrides", nargs="*", help="config overrides key=value")
    e.add_argument("--images", type=int, required=True, help="images (URLs) of the build to project")
    e.add_argument("--workers", type=int, default=None, help="CPU cores of the target (default: this machine's)")
    e.add_argument("--gpus", type=int, default=0, help="GPUs of the target")
    e.add_argument("--sample", type=int, default=200, help="URLs of the input to run (default 200)")
    e.add_argument("--json", action="store_true", help="print one JSON object last (tables go to stderr)")
    e.add_argument("--rates", default=None, help="YAML {stage: {units_per_s: R, gpu: bool}} measured elsewhere")
    s = sub.add_parser("status", help="stage x shard progress and failures")
    s.add_argument("out")
    s.add_argument("--json", action="store_true")
    s.add_argument("--watch", action="store_true", help="refresh done/total, shards/min and ETA until the build is done")
    s.add_argument("--interval", type=float, default=5.0, help="seconds between --watch refreshes (default 5)")
    s.add_argument("--count", type=int, default=0, help="--watch: stop after N refreshes (default: when done)")
    q = sub.add_parser("sql", help="run SQL on the catalog")
    q.add_argument("out")
    q.add_argument("query")
    q.add_argument("--limit", type=int, default=50, help="rows to print")
    c = sub.add_parser("catalog", help="(re)build OUT/catalog.duckdb (for an s3://… OUT: built in a local cache "
                                            "file, then uploaded to OUT/catalog.duckdb on the store)")
    c.add_argument("out")
    c.add_argument("--to", default=None, help="catalog file to write (default OUT/catalog.duckdb, or the cache "
                                                      "and the store; with --to nothing is uploaded)")
    v = sub.add_parser("report", help="write the visual QA report to OUT/report/index.html")
    v.add_argument("out")
    v.add_argument("--clusters", type=int, default=8, help="leaf clusters per gallery group (largest/smallest/random)")
    v.add_argument("--per-cluster", type=int, default=12, help="crops per cluster, closest to the centroid first")
    v.add_argument("--images", type=int, default=24, help="sampled images shown with their boxes")
    v.add_argument("--seed", type=int, default=0, help="seed of the SQL sampling")
    r = sub.add_parser("retry", help="re-download only the retryable failures (timeouts, 5xx, 429)")
    r.add_argument("out")
    r.add_argument("--ledger-only", action="store_true", help="merge into the ledger, do not rebuild")
    r.add_argument("overrides", nargs="*", help="changes to the saved config, key=value")
    m = sub.add_parser("sample", help="draw a region subset balanced over the cluster tree (or at random)")
    m.add_argument("out")
    m.add_argument("--size", type=int, required=True, help="regions to draw")
    m.add_argument("--strategy", choices=["balanced", "random"], default="balanced")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--to", required=True, help="Parquet file to write (use it with pack.sample=FILE)")
    t = sub.add_parser("train", help="train RICE or Croc off OUT/train shards")
    t.add_argument("kind", choices=["rice", "croc"])
    t.add_argument("config", help="YAML config file ('': the kind's defaults)")
    t.add_argument("overrides", nargs="*")
    t.add_argument("--dry-run", action="store_true", help="print the data lineage and resume point; train nothing")
    return p


def _config_and_overrides(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """``[CONFIG.yaml] [key=value ...]``: a first argument with ``=`` is an override, not a file."""
    if args.config is not None and "=" in args.config:
        return None, [args.config, *args.overrides]
    return args.config, list(args.overrides)


INIT_TITLE = """regionset build config: every section and key with its default (from the config dataclasses).
Edit what you need and delete the rest; any key can also be given as key=value on the command line:
  regionset build build.yaml input.path=urls.parquet output=out"""


def _init(file: str, force: bool) -> None:
    from regionset.common.yaml_doc import commented_yaml
    from regionset.pipelines.config import BuildConfig

    text = commented_yaml(BuildConfig(), INIT_TITLE)
    if file == "-":
        print(text, end="")
        return
    path = Path(file)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite it")
    path.write_text(text)
    print(f"wrote {path}: set input.path and output, then: regionset build {path}")


def _sql(out: Output, query: str, limit: int) -> None:
    from regionset.pipelines.core.catalog import connect
    from regionset.pipelines.core.progress import print_table

    con = connect(out)
    try:
        cur = con.execute(query)
        cols = [d[0] for d in cur.description] if cur.description else []
        rows = cur.fetchmany(limit)
    finally:
        con.close()
    print_table(query if len(query) < 100 else query[:97] + "...", cols, rows)


OUTPUT_COMMANDS = ("sql", "status", "report", "sample", "retry", "catalog")  # commands over a build's output


def run_training(kind: str, config: str | None, overrides: list[str], dry_run: bool = False) -> dict:
    """``regionset train``: one training kind's summary (with ``dry_run``: its plan, ``out_dir`` included).

    The only place pipelines touch training, lazily (the CLI is the top of the import graph).

    Args:
        kind: ``rice`` or ``croc``.
        config: the training config (a path or URL; None: the kind's defaults).
        overrides: ``section.key=value`` items applied after the file.
        dry_run: return the data lineage and resume decision instead of training.
    """
    from regionset.training.cli import run_training as run

    return run(kind, config, overrides, dry_run=dry_run)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``regionset`` console script; returns the exit code."""
    set_offline_defaults()
    args = _parser().parse_args(argv)
    from regionset.common.store_retry import StoreError
    from regionset.common.typed_config import ConfigError
    from regionset.pipelines.core.inputs import InputError
    from regionset.pipelines.core.lock import LockedError
    from regionset.pipelines.core.shard_run import WaitingError
    from regionset.schemas import SchemaError

    try:
        if args.cmd in OUTPUT_COMMANDS:
            from regionset.pipelines.core.output_check import require_output

            out = require_output(args.out)  # one clear line for a wrong folder or URL; the command's Output
        if args.cmd == "demo":
            from regionset.pipelines.tools.demo.run import run_demo

            run_demo(args.out, args.limit, extra=args.overrides)
        elif args.cmd == "build":
            from regionset.pipelines.build import build
            from regionset.pipelines.config import load_config

            build(load_config(*_config_and_overrides(args)))
        elif args.cmd == "estimate":
            from regionset.pipelines.tools.estimate.run import run_estimate

            config, overrides = _config_and_overrides(args)
            run_estimate(config, overrides, args.images, args.workers, args.gpus, args.sample, args.json, args.rates)
        elif args.cmd == "init":
            _init(args.file, args.force)
        elif args.cmd == "config":
            import yaml

            from regionset.common.typed_config import config_warnings, to_dict
            from regionset.pipelines.config import load_config

            cfg = load_config(*_config_and_overrides(args))
            for w in config_warnings(cfg):
                print(f"regionset config: warning: {w}", file=sys.stderr)
            print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        elif args.cmd == "doctor":
            from regionset.pipelines.tools.doctor import doctor

            return doctor(*_config_and_overrides(args))
        elif args.cmd == "status":
            if args.watch:
                from regionset.pipelines.tools.watch import run_watch

                run_watch(out, interval=max(args.interval, 0.1), count=max(args.count, 0))
            else:
                from regionset.pipelines.tools.status import print_status

                print_status(out, as_json=args.json)
        elif args.cmd == "sql":
            _sql(out, args.query, args.limit)
        elif args.cmd == "retry":
            from regionset.pipelines.build import build
            from regionset.pipelines.core.progress import print_table
            from regionset.pipelines.tools.retry import report_dict, retry_failures, saved_config

            rep = report_dict(retry_failures(out, args.overrides))
            print_table(f"retry {args.out}", list(rep), [list(rep.values())])
            if not args.ledger_only:  # downstream stages redo the shards whose ledger changed
                build(saved_config(out))
        elif args.cmd == "report":
            from regionset.pipelines.tools.report.build import write_report

            print(write_report(out, clusters=args.clusters, per_cluster=args.per_cluster,
                               seed=args.seed, images=args.images))
        elif args.cmd == "catalog":
            from regionset.pipelines.core.catalog import build_catalog

            print(build_catalog(out, Path(args.to) if args.to else None))
        elif args.cmd == "sample":
            from regionset.pipelines.tools.sample import write_sample

            n = write_sample(out, as_path(args.to), args.size, args.strategy, args.seed)
            print(f"{n} regions ({args.strategy}, seed {args.seed}) -> {args.to}")
        elif args.cmd == "train":
            try:
                summary = run_training(args.kind, args.config or None, args.overrides, dry_run=args.dry_run)
            except ValueError as err:  # e.g. a shard that appeared or vanished since the checkpoint
                print(f"regionset train: error: {err}", file=sys.stderr)
                return 2
            if args.dry_run:
                print(json.dumps(summary, indent=1, default=str))
    except (ConfigError, InputError, LockedError, FileNotFoundError, FileExistsError, SchemaError) as err:
        if getattr(args, "debug", False):  # e.g. a PreflightError (a ConfigError) of build --debug
            import traceback

            traceback.print_exc()
        print(f"regionset {args.cmd}: error: {err}", file=sys.stderr)
        return 2
    except (StoreError, WaitingError, StallError) as err:  # the store kept failing past the bounded
        # retries (docs/storage.md), the build ran but an output is not where the driver reads it, or a
        # lost node the engine did not recover from (docs/cluster.md)
        print(f"regionset {args.cmd}: error: {err}", file=sys.stderr)
        return 1
    except Exception as err:
        if type(err).__module__.startswith("duckdb"):
            print(f"regionset {args.cmd}: error: {err}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
