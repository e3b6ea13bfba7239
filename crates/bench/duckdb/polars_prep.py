#!/usr/bin/env python3
"""Polars' streaming engine doing the same job as duckdb/prep.py on a GBIF multimedia.txt: a
second yardstick that `dd-bench prep` times beside ours and DuckDB's (issue 19 asks whether our
prep should be expressed in it). Not part of the product.

The query is duckdb/prep.py's, written with polars' lazy API and run by `sink_parquet` with
`engine="streaming"` into hive-partitioned parquet `urls/server_name=<key>/partition_id=<n>/`;
read that script's header for what the job includes and what ours does beyond it. Differences
from DuckDB's version:
  - polars' CSV reader has no "drop lines whose field count differs": lines with too many
    fields are cut and lines with too few are padded with nulls (`truncate_ragged_lines`), so
    a few more rows survive than in DuckDB's and ours;
  - the stand-in for the UUID is polars' 64-bit `hash` of the URL, not sha1;
  - polars has no memory limit: its group-by over every unique URL is held in memory.

Usage: polars_prep.py INPUT OUTDIR [--threads N] [--batch-size B]
Prints one JSON line on stdout: the figures `dd-bench prep` reads.
"""

import argparse
import json
import os
import resource
import shutil
import sys
import time

# duckdb/prep.py's: scheme, optional userinfo, host (bracketed IPv6 or a run of non-delimiters),
# optional port, then the rest.
URL_RE = r"^([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#@\s]*@)?(\[[0-9A-Fa-f:.]+\]|[^/?#:@\s\[\]]+)(?::([0-9]*))?(.*)$"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input")
    ap.add_argument("outdir")
    ap.add_argument("--threads", type=int, default=None, help="POLARS_MAX_THREADS (default: all cores)")
    ap.add_argument("--batch-size", type=int, default=10_000)
    args = ap.parse_args()
    if args.threads:
        os.environ["POLARS_MAX_THREADS"] = str(args.threads)
    import polars as pl  # after POLARS_MAX_THREADS is set: polars reads it once, on import

    shutil.rmtree(args.outdir, ignore_errors=True)
    os.makedirs(args.outdir)
    with open(args.input, "rb") as f:
        header = f.readline().decode("utf-8", "replace").rstrip("\r\n").lstrip("\ufeff").split("\t")
    lower = {name.lower(): name for name in header}
    for need in ("gbifid", "identifier", "type", "format"):
        if need not in lower:
            print(f"polars_prep.py: {args.input} has no column {need} (found: {', '.join(header)})", file=sys.stderr)
            return 1

    def col(name: str):
        real = lower.get(name.lower())
        return pl.col(real) if real else pl.lit(None, dtype=pl.Utf8)

    def nonempty(name: str):
        return pl.col(name).fill_null("") != ""

    started = time.perf_counter()
    src = pl.scan_csv(
        args.input, separator="\t", quote_char=None, has_header=True, infer_schema=False,
        truncate_ragged_lines=True, empty_string_is_null=False, ignore_errors=True,
    ).select(
        id=col("gbifID").str.strip_chars(), raw_url=col("identifier").str.strip_chars(),
        kind=col("type").str.strip_chars(), fmt=col("format").str.strip_chars(),
        license=col("license"), source=col("source"), title=col("title"), basis=col("basisOfRecord"),
    )
    is_image = (pl.col("kind").str.to_lowercase() == "stillimage") | (
        ~nonempty("kind") & pl.col("fmt").str.to_lowercase().str.starts_with("image/")
    )
    not_citation = ~pl.col("basis").fill_null("").str.to_uppercase().str.contains("MATERIAL_CITATION", literal=True)
    parts = (
        src.filter(nonempty("id") & nonempty("raw_url") & is_image & not_citation)
        .with_columns(u=pl.col("raw_url").str.extract_groups(URL_RE))
        .with_columns(
            scheme=pl.col("u").struct.field("1").str.to_lowercase(),
            userinfo=pl.col("u").struct.field("2").fill_null(""),
            host=pl.col("u").struct.field("3").str.to_lowercase(),
            port=pl.col("u").struct.field("4").fill_null(""),
            rest=pl.col("u").struct.field("5").fill_null(""),
        )
        .filter(pl.col("scheme").is_in(["http", "https"]) & nonempty("host"))
    )
    default_port = (
        (pl.col("port") == "")
        | ((pl.col("scheme") == "http") & (pl.col("port") == "80"))
        | ((pl.col("scheme") == "https") & (pl.col("port") == "443"))
    )
    parts = parts.with_columns(port=pl.when(default_port).then(pl.lit("")).otherwise(pl.col("port")))
    has_port = pl.col("port") != ""
    kept = parts.with_columns(
        url=pl.concat_str(
            pl.col("scheme"), pl.lit("://"), pl.col("userinfo"), pl.col("host"),
            pl.when(has_port).then(pl.lit(":") + pl.col("port")).otherwise(pl.lit("")),
            pl.when(pl.col("rest") == "").then(pl.lit("/")).otherwise(pl.col("rest")),
        ),
        server_name=pl.concat_str(
            pl.col("host"), pl.when(has_port).then(pl.lit("_") + pl.col("port")).otherwise(pl.lit(""))
        ).str.replace_all(r"[^a-z0-9._-]", "_"),
    )
    unique = kept.group_by("url").agg(
        server_name=pl.col("server_name").first(),
        source_ids=pl.col("id").unique().sort(),
        license=pl.col("license").sort_by("id").first(),
        source=pl.col("source").sort_by("id").first(),
        title=pl.col("title").sort_by("id").first(),
    )
    batched = unique.with_columns(
        uuid=pl.col("url").hash(),
        partition_id=(pl.col("url").rank("ordinal").over("server_name") - 1) // args.batch_size,
    )
    urls_dir = os.path.join(args.outdir, "urls")
    batched.sink_parquet(
        pl.PartitionBy(urls_dir, key=["server_name", "partition_id"], include_key=False),
        mkdir=True,
        engine="streaming",
    )
    wall = time.perf_counter() - started

    # Counted from what was written, outside the timed part.
    counted = (
        pl.scan_parquet(os.path.join(urls_dir, "**", "*.parquet"), hive_partitioning=True)
        .select(
            urls=pl.len(),
            servers=pl.col("server_name").n_unique(),
            batches=pl.struct("server_name", "partition_id").n_unique(),
        )
        .collect()
    )
    # ru_maxrss is in KiB on Linux: the peak of this process, which is where polars runs.
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "polars_version": pl.__version__,
                "threads": args.threads,
                "wall_s": round(wall, 3),
                "peak_rss_mib": round(peak_kib / 1024, 1),
                "unique_urls": counted["urls"][0],
                "servers": counted["servers"][0],
                "batches": counted["batches"][0],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
