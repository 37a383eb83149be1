"""``regionset demo``: serve the sample images on loopback, build, print where to look."""

from __future__ import annotations

import tempfile
from contextlib import nullcontext
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from regionset.common.typed_config import ConfigError
from regionset.models.kmeans_index import read_meta
from regionset.pipelines.build import build
from regionset.pipelines.config import load_config
from regionset.pipelines.core.catalog import catalog_file
from regionset.pipelines.core.labels import cluster_summary
from regionset.pipelines.core.output import Output
from regionset.pipelines.core.progress import out_console, print_table
from regionset.pipelines.executors.config import ExecutorConfig
from regionset.pipelines.tools.demo.corpus import demo_images
from regionset.pipelines.tools.demo.server import LoopbackServer
from regionset.pipelines.tools.report.build import write_report
from regionset.schemas.tables import KMEANS

EXAMPLE_SQL = [
    "SELECT status, count(*) AS n FROM images GROUP BY status ORDER BY n DESC",
    "SELECT source, count(*) AS regions, round(avg((x1-x0)*(y1-y0))) AS mean_area FROM regions GROUP BY source",
    "SELECT key, text, round(score, 2) AS score FROM regions WHERE source = 'text' LIMIT 10",
    "SELECT * FROM cluster_size_histogram",
    "SELECT * FROM top_ocr_tokens LIMIT 10",
]


def write_url_list(server: LoopbackServer, folder: Path, limit: int | None = None) -> Path:
    """Register the demo images on ``server`` and write ``urls.parquet`` with a few bad URLs mixed in."""
    urls, captions = [], []
    for img in demo_images(limit):
        urls.append(server.add(img.name, img.data))
        captions.append(img.caption)
    server.add("broken.jpg", b"\xff\xd8\xff\xe0 this is not really a jpeg")
    bad = [(server.url("files/missing.jpg"), "a file that is not there (404)"),
           (server.url("files/broken.jpg"), "corrupt bytes served as a jpeg")]
    for url, cap in bad:
        urls.insert(len(urls) // 2, url)
        captions.insert(len(captions) // 2, cap)
    path = folder / "urls.parquet"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"url": urls, "caption": captions}), path)
    return path


def demo_overrides(out: Output, urls: Path, shard_size: int) -> list[str]:
    """The config of the demo: loopback allowed, small shards, every step on its offline default."""
    return [f"output={out}", f"input.path={urls}", f"input.shard_size={shard_size}",
            "download.allow_loopback=true", "download.timeout=5",
            "kmeans.levels=[3,3]"]  # two levels, ~10 regions per leaf: the demo has ~90 object regions


def refuse_other_hosts(ex: ExecutorConfig) -> None:
    """Raise ``ConfigError`` (exit 2) if ``ex`` may run tasks on other hosts: the demo serves its images on
    this host's 127.0.0.1, which a worker elsewhere cannot reach (every download would fail and an empty
    dataset "succeed"). A Ray started here (no ``executor.ray.address``) and ``local[...]`` Spark run here.

    Args:
        ex: the demo's ``executor`` section.
    """
    where = {"ray": ex.ray.address and f"executor.ray.address={ex.ray.address}",
             "spark": not ex.spark.master.startswith("local") and f"executor.spark.master={ex.spark.master}"}
    if where.get(ex.name):
        raise ConfigError(f"demo: {where[ex.name]} may run tasks on other hosts, which cannot reach the demo's "
                          "images on this host's 127.0.0.1; run the demo locally, or build your own URL list "
                          "with regionset build")


def run_demo(out: str | Path | Output = "regionset-demo", limit: int | None = None, shard_size: int = 8,
             extra: list[str] | None = None) -> Output:
    """Run the demo end to end into ``out`` (a folder or an object-store prefix: every step runs on
    both) and print the output path, example queries, the cluster sizes and the report's path."""
    refuse_other_hosts(load_config(None, list(extra or [])).executor)  # before anything is served or written
    out = Output.of(out)  # a local folder is absolute
    remote = out.is_remote
    lists = tempfile.TemporaryDirectory(prefix="regionset-demo-") if remote else nullcontext(out / "_demo")
    with lists as folder, LoopbackServer() as server:
        urls = write_url_list(server, Path(folder), limit)  # the URL list is a local file either way
        cfg = load_config(None, demo_overrides(out, urls, shard_size) + list(extra or []))
        build(cfg, out=out if cfg.output == out.url else None)  # an ``output=`` override makes its own
    catalog = catalog_file(out)
    out_console.print(f"\n[bold green]demo output:[/] {out}", soft_wrap=True)
    where = f"(local; its views read {out})" if remote else "(also opens in the plain duckdb CLI)"
    out_console.print(f"catalog: {catalog}  {where}", soft_wrap=True)
    out_console.print("try:")
    for q in EXAMPLE_SQL:
        out_console.print(f'  regionset sql {out} "{q}"', soft_wrap=True, markup=False, highlight=False)
    if read_meta(out / KMEANS) is not None:
        print_table("clusters (SELECT * FROM clusters)",
                    ["level", "clusters", "regions", "empty", "min", "median", "max"], cluster_summary(catalog))
    out_console.print(f"report: {write_report(out)}  (open it in a browser)", soft_wrap=True)
    return out
