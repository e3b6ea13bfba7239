#!/usr/bin/env python3
"""DuckDB doing the work of `distributed-downloader prep` on a GBIF multimedia.txt: the yardstick
that `dd-bench prep` times beside ours (issue 19). Not part of the product.

What it does, as our prep does (src/prep/{input,filter,server_key,spill,batches}.rs):
  - reads the tab-separated file with a header, no quoting; a line whose field count differs
    from the header's is dropped (DuckDB's ignore_errors);
  - keeps a row when gbifID is non-empty, the identifier is an absolute http(s) URL with a host,
    and type is StillImage (any case) or type is empty and format starts with image/ (any case);
    rows whose basisOfRecord contains MATERIAL_CITATION are dropped when the column exists;
  - canonicalises the URL's scheme and authority (lowercase scheme and host, default port :80 /
    :443 dropped) and merges identical URLs, keeping every source id (sorted, distinct) and the
    license/source/title of the smallest source id;
  - the server key is the host lowercased, with `_<port>` for a non-default port, and any byte
    outside [a-z0-9._-] replaced by `_`;
  - numbers each server's URLs in URL order and cuts batches of BATCH_SIZE, so every server gets
    exactly ceil(n / BATCH_SIZE) batches, written as hive-partitioned parquet
    `urls/server_name=<key>/partition_id=<n>/*.parquet` (partition columns only in the path);
  - one column of hashing per URL (sha1 of the URL, hex) as a stand-in for our UUIDv5.

What it does NOT do that ours does (so DuckDB's time is a lower bound for the same job):
  - no per-reason drop counts (malformed, missing id, missing URL, not image, invalid URL,
    ignored server), no malformed-line samples with line numbers: bad lines vanish silently;
  - no full URL parsing: the path, query and fragment are compared as written (our `url` crate
    percent-encodes spaces and odd bytes, resolves `/./` and `/../`, applies IDNA to hosts), and
    the http(s)/host check is a regular expression, not a parser;
  - no real UUIDv5s (image uuid and one row uuid per source id), no per-batch content ids;
  - no servers.parquet table, no prep_report.json, no atomic publish (staging then rename);
  - hostile host names are only character-mapped: no guard against `.`/`..` keys, no cut with a
    hash suffix for hosts longer than 120 bytes, IPv6 hosts are not rewritten to `ipv6-...`;
  - no ignored-servers list, no progress output.
  Batch contents differ from ours (ours orders URLs by spill bucket, then URL); the counts agree.

Usage: prep.py INPUT OUTDIR [--threads N] [--batch-size B] [--memory-limit 2GB]
Prints one JSON line on stdout: the figures `dd-bench prep` reads.
"""

import argparse
import json
import os
import resource
import shutil
import sys
import time

import duckdb

# The scheme, optional userinfo, host (a bracketed IPv6 literal or a run of non-delimiters) and
# optional port of an absolute URL, then the rest. RE2 syntax (DuckDB's regex engine).
URL_RE = (
    r"^([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#@\s]*@)?(\[[0-9A-Fa-f:.]+\]|[^/?#:@\s\[\]]+)(?::([0-9]*))?(.*)$"
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input")
    ap.add_argument("outdir")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--batch-size", type=int, default=10_000)
    ap.add_argument("--memory-limit", default=None, help="DuckDB memory_limit, e.g. 2GB (default: DuckDB's 80%% of RAM)")
    args = ap.parse_args()

    urls_dir = os.path.join(args.outdir, "urls")
    tmp_dir = os.path.join(args.outdir, ".duckdb-tmp")
    shutil.rmtree(args.outdir, ignore_errors=True)
    os.makedirs(tmp_dir)

    started = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"SET threads = {int(args.threads)}")
    con.execute("SET temp_directory = ?", [tmp_dir])
    # Our prep keeps no input order either; this lets DuckDB stream the COPY.
    con.execute("SET preserve_insertion_order = false")
    if args.memory_limit:
        con.execute("SET memory_limit = ?", [args.memory_limit])

    with open(args.input, "rb") as f:
        header = f.readline().decode("utf-8", "replace").rstrip("\r\n").lstrip("\ufeff").split("\t")
    columns = {name: "VARCHAR" for name in header}
    lower = {name.lower(): name for name in header}
    for need in ("gbifid", "identifier", "type", "format"):
        if need not in lower:
            print(f"prep.py: {args.input} has no column {need} (found: {', '.join(header)})", file=sys.stderr)
            return 1

    def col(name: str) -> str:
        real = lower.get(name.lower())
        return f'"{real}"' if real else "NULL"

    basis = col("basisOfRecord")
    basis_filter = f"AND coalesce(upper({basis}), '') NOT LIKE '%MATERIAL_CITATION%'" if basis != "NULL" else ""
    query = f"""
    WITH src AS (
        SELECT trim({col('gbifID')}) AS id, trim({col('identifier')}) AS raw_url,
               trim({col('type')}) AS kind, trim({col('format')}) AS fmt,
               {col('license')} AS license, {col('source')} AS source, {col('title')} AS title
        FROM read_csv(?, delim = '\t', quote = '', escape = '', header = true, columns = {columns!r},
                      ignore_errors = true, strict_mode = true, null_padding = false, store_rejects = false)
    ),
    parsed AS (
        SELECT id, license, source, title,
               regexp_extract(raw_url, '{URL_RE}', ['scheme', 'userinfo', 'host', 'port', 'rest']) AS u
        FROM src
        WHERE id <> '' AND raw_url <> ''
          AND (lower(kind) = 'stillimage' OR (coalesce(kind, '') = '' AND lower(fmt) LIKE 'image/%'))
          {basis_filter}
    ),
    checked AS (
        SELECT id, license, source, title, lower(u.scheme) AS scheme, u.userinfo AS userinfo,
               lower(u.host) AS host, u.rest AS rest,
               CASE WHEN u.port = '' OR (lower(u.scheme) = 'http' AND u.port = '80')
                         OR (lower(u.scheme) = 'https' AND u.port = '443')
                    THEN '' ELSE u.port END AS port
        FROM parsed
        WHERE lower(u.scheme) IN ('http', 'https') AND u.host <> ''
    ),
    kept AS (
        SELECT id, license, source, title,
               scheme || '://' || userinfo || host || CASE WHEN port = '' THEN '' ELSE ':' || port END
                   || CASE WHEN rest = '' THEN '/' ELSE rest END AS url,
               regexp_replace(host || CASE WHEN port = '' THEN '' ELSE '_' || port END,
                              '[^a-z0-9._-]', '_', 'g') AS server_name
        FROM checked
    ),
    unique_urls AS (
        SELECT url, any_value(server_name) AS server_name,
               list_sort(list_distinct(list(id))) AS source_ids,
               arg_min(license, id) AS license, arg_min(source, id) AS source, arg_min(title, id) AS title
        FROM kept
        GROUP BY url
    )
    SELECT sha1(url) AS uuid, url, source_ids, license, source, title, server_name,
           (row_number() OVER (PARTITION BY server_name ORDER BY url) - 1) // {int(args.batch_size)}
               AS partition_id
    FROM unique_urls
    """
    con.execute(
        f"COPY ({query}) TO '{urls_dir}' (FORMAT parquet, PARTITION_BY (server_name, partition_id), OVERWRITE_OR_IGNORE)",
        [args.input],
    )
    prep_seconds = time.perf_counter() - started

    # Counted from what was written, outside the timed part: these are the figures to compare.
    counted = time.perf_counter()
    urls, servers, batches = con.execute(
        "SELECT count(*), count(DISTINCT server_name), count(DISTINCT (server_name, partition_id)) "
        "FROM read_parquet(?, hive_partitioning = true, hive_types = {'server_name': VARCHAR, 'partition_id': BIGINT})",
        [os.path.join(urls_dir, "**", "*.parquet")],
    ).fetchone()
    count_seconds = time.perf_counter() - counted
    con.close()
    shutil.rmtree(tmp_dir, ignore_errors=True)

    # ru_maxrss is in KiB on Linux: the peak of this process, which is where DuckDB runs.
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "duckdb_version": duckdb.__version__,
                "threads": args.threads,
                "memory_limit": args.memory_limit,
                "wall_s": round(prep_seconds, 3),
                "count_s": round(count_seconds, 3),
                "peak_rss_mib": round(peak_kib / 1024, 1),
                "unique_urls": urls,
                "servers": servers,
                "batches": batches,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
