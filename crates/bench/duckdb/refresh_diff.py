#!/usr/bin/env python3
"""DuckDB doing the anti-joins of the refresh diff on two snapshots: the yardstick that
`dd-bench refresh-diff` times beside ours (issue 34). Not part of the product.

Reads the old snapshot's manifest (OLD/index/manifest/**/manifest.parquet, as `index` writes it)
and the new snapshot's batch files (NEW/urls/server_name=*/partition_id=*/*.parquet, as `prep`
writes them), and writes, as parquet:
  - new.parquet:     new rows not stored (or taken down) in the old one   (anti-join)
  - gone.parquet:    old rows not in the new snapshot                      (anti-join)
  - carried.parquet: new rows stored in the old one, with OLD's shard and row and whether the
                     licence differs                                       (join)
  - removed.parquet: new rows taken down in the old one                    (semi-join)

What it does NOT do that ours does (so DuckDB's time is a lower bound for the same job): it
compares the licence only (ours compares the seven carried columns, the set of source ids and,
when both snapshots have them, the twelve occurrence columns, and says which changed); no
occurrence files are read; no per-server or per-dataset counts, no malformed-row counts, no
report, no atomic publish.

Usage: refresh_diff.py OLD NEW OUTDIR [--threads N] [--memory-limit 2GB]
Prints one JSON line on stdout: its wall time, peak RSS and the count of each class.
"""

import argparse
import json
import os
import resource
import shutil
import sys
import time

import duckdb


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("outdir")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--memory-limit", default=None, help="DuckDB memory_limit (default: DuckDB's 80%% of RAM)")
    args = ap.parse_args()

    tmp_dir = os.path.join(args.outdir, ".duckdb-tmp")
    shutil.rmtree(args.outdir, ignore_errors=True)
    os.makedirs(tmp_dir)
    out = lambda name: os.path.join(args.outdir, name)  # noqa: E731

    started = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"SET threads = {int(args.threads)}")
    con.execute("SET temp_directory = ?", [tmp_dir])
    con.execute("SET preserve_insertion_order = false")
    if args.memory_limit:
        con.execute("SET memory_limit = ?", [args.memory_limit])
    old_glob = os.path.join(args.old, "index", "manifest", "**", "*.parquet")
    new_glob = os.path.join(args.new, "urls", "**", "*.parquet")
    con.execute(
        f"CREATE VIEW old AS SELECT uuid, url, server, status, license, shard, \"row\" "
        f"FROM read_parquet('{old_glob}', hive_partitioning = false)"
    )
    con.execute(
        f"CREATE VIEW new AS SELECT uuid, url, server_name, license "
        f"FROM read_parquet('{new_glob}', hive_partitioning = true, hive_types = {{'server_name': VARCHAR, 'partition_id': BIGINT}})"
    )
    queries = {
        "new.parquet": "SELECT n.uuid, n.url, n.server_name FROM new n ANTI JOIN "
        "(SELECT uuid FROM old WHERE status IN ('stored', 'removed')) o ON n.uuid = o.uuid",
        "gone.parquet": "SELECT o.uuid, o.url, o.server FROM old o ANTI JOIN new n ON o.uuid = n.uuid",
        "carried.parquet": "SELECT n.uuid, n.url, n.server_name, o.shard, o.\"row\", "
        "n.license IS DISTINCT FROM o.license AS licence_changed "
        "FROM new n JOIN old o ON n.uuid = o.uuid WHERE o.status = 'stored'",
        "removed.parquet": "SELECT n.uuid FROM new n SEMI JOIN "
        "(SELECT uuid FROM old WHERE status = 'removed') o ON n.uuid = o.uuid",
    }
    for name, query in queries.items():
        con.execute(f"COPY ({query}) TO '{out(name)}' (FORMAT parquet)")
    wall = time.perf_counter() - started

    # Counted from what was written, outside the timed part.
    count = lambda name, where="true": con.execute(  # noqa: E731
        f"SELECT count(*) FROM read_parquet('{out(name)}') WHERE {where}"
    ).fetchone()[0]
    counts = {
        "new": count("new.parquet"),
        "gone": count("gone.parquet"),
        "metadata_changed": count("carried.parquet", "licence_changed"),
        "unchanged": count("carried.parquet", "NOT licence_changed"),
        "removed": count("removed.parquet"),
    }
    con.close()
    shutil.rmtree(tmp_dir, ignore_errors=True)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "duckdb_version": duckdb.__version__,
                "threads": args.threads,
                "memory_limit": args.memory_limit,
                "wall_s": round(wall, 3),
                "peak_rss_mib": round(peak_kib / 1024, 1),
                "classes": counts,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
