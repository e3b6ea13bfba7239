#!/usr/bin/env bash
# The demo: the whole pipeline on an embedded input that needs no internet.
#   1. a local origin serves generated images on loopback hosts with scripted behaviour,
#   2. prep turns a GBIF-style multimedia.txt pointing at them into per-server batches,
#   3. profile asks each server for robots.txt and sends it 3 spaced samples (on 2 MPI ranks),
#      setting each server's starting rate,
#   4. download runs on 2 MPI ranks (rank 0 plans which rank owns which host), fetches the
#      images politely into HDF5 shards, and prints its summary,
#   5. `status` shows the totals, the servers (slowest first) and the plans,
#   6. `verify --full` checks every shard and every stored image (on 2 MPI ranks),
#   7. `index` writes the manifest (on 2 MPI ranks) and `dedup` looks for duplicates in it,
#   8. `refresh` makes next month's dataset from a changed list, fetching only what is new,
#   9. the origin reports what each server saw.
# Usage: scripts/demo.sh PATH_TO_BINARY PATH_TO_TEST_ORIGIN (`make demo` passes both)
set -euo pipefail
BIN=${1:?usage: scripts/demo.sh PATH_TO_BINARY PATH_TO_TEST_ORIGIN}
ORIGIN_BIN=${2:?usage: scripts/demo.sh PATH_TO_BINARY PATH_TO_TEST_ORIGIN}
cd "$(dirname "$0")/.."
OUT=${DEMO_OUT:-demo-out}
PORT=${DEMO_PORT:-8701}
rm -rf "$OUT" && mkdir -p "$OUT"

HOSTS=(
  "127.0.0.2:$PORT=ok"
  "127.0.0.3:$PORT=ratelimit:2:1"
  "127.0.0.4:$PORT=flaky503:10"
  "127.0.0.5:$PORT=slow:300"
  "127.0.0.6:$PORT=notfound"
  "127.0.0.7:$PORT=dead"
)
"$ORIGIN_BIN" --max-seconds 900 "${HOSTS[@]}" > "$OUT/origin.txt" 2> "$OUT/origin.log" &
ORIGIN=$!
trap 'kill $ORIGIN 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    [ "$(grep -c serving "$OUT/origin.log" 2>/dev/null || true)" -ge ${#HOSTS[@]} ] && break
    if ! kill -0 $ORIGIN 2>/dev/null; then
        cat "$OUT/origin.log" >&2
        echo "demo: the local origin did not start (is port $PORT taken? set DEMO_PORT)" >&2
        exit 1
    fi
    sleep 0.2
done

# A GBIF multimedia table with the usual dirt: a sound file, a row without identifier, a URL
# shared by two records, an ftp URL, and a truncated line; and duplicates for `dedup`.
python3 - "$OUT/multimedia.txt" "$PORT" <<'PY'
import sys
out, port = sys.argv[1], sys.argv[2]
cols = ["gbifID","type","format","identifier","references","title","description","source","audience",
        "created","creator","contributor","publisher","license","rightsHolder"]
sizes = ["w2400-h1600", "w1600-h1200", "w1200-h900", "w800-h600", "w640-h480"]
counts = {2: 60, 3: 30, 4: 30, 5: 20, 6: 10, 7: 10}
rows, gid = [], 4000000000
for host, n in counts.items():
    for i in range(n):
        gid += 1
        ext = "png" if i % 10 == 9 else "jpg"
        url = f"http://127.0.0.{host}:{port}/img/{sizes[i % len(sizes)]}-{host}-{i}.{ext}"
        rows.append([str(gid), "StillImage", "image/jpeg", url] + [""] * 9 + ["CC-BY 4.0", f"Museum {host}"])
rows.append([str(gid + 1), "Sound", "audio/mpeg", f"http://127.0.0.2:{port}/a.mp3"] + [""] * 11)
rows.append([str(gid + 2), "StillImage", "image/jpeg", ""] + [""] * 11)
rows.append([str(gid + 3), "StillImage", "image/jpeg", f"http://127.0.0.2:{port}/img/w800-h600-2-3.jpg"] + [""] * 11)
rows.append([str(gid + 4), "", "image/png", "ftp://127.0.0.3/x.png"] + [""] * 11)
# For dedup: one photo published by two museums at two sizes, and one file served by two hosts.
for k, path in enumerate([f"2:{port}/img/cam-w2048-h1536-s7.jpg", f"3:{port}/img/cam-w800-h600-s7.jpg",
                          f"2:{port}/img/cam-w640-h480-s43.jpg", f"4:{port}/img/cam-w640-h480-s43.jpg"]):
    rows.append([str(gid + 10 + k), "StillImage", "image/jpeg", f"http://127.0.0.{path}"] + [""] * 9
                + ["CC-BY 4.0", "Museum"])
with open(out, "w") as f:
    f.write("\t".join(cols) + "\n")
    for r in rows:
        f.write("\t".join(r) + "\n")
    f.write(f"{gid + 5}\tStillImage\timage/jpeg\n")
PY

echo "== prep"
"$BIN" --config config/demo.env prep --input "$OUT/multimedia.txt" --output "$OUT/dataset"
echo
RANKS=${DEMO_RANKS:-2}
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
echo "== profile on $RANKS MPI ranks: robots.txt and 3 spaced samples per server"
mpirun -n "$RANKS" --oversubscribe "$BIN" --config config/demo.env profile --output "$OUT/dataset"
echo
echo "== download on $RANKS MPI ranks"
mpirun -n "$RANKS" --oversubscribe "$BIN" --config config/demo.env download --output "$OUT/dataset"
echo
echo "== status: what a user watching the job sees (\`status\`, also \`--json\`)"
"$BIN" --config config/demo.env status --output "$OUT/dataset"
echo
echo "== the plans rank 0 made, one per round ($OUT/dataset/plans/)"
python3 -c "
import json, sys, glob
for path in sorted(glob.glob(sys.argv[1] + '/round-*.json')):
    p = json.load(open(path))
    print(f\"  round {p['round']}:\")
    for s in p['assignments']:
        print(f\"    {s['host']:<20} rank {s['rank']}  batches {s['partitions']}  {s['rate']:.1f} req/s\")
" "$OUT/dataset/plans"
echo
echo "== verify --full on $RANKS MPI ranks: every shard whole, every image against its checksum and decoded"
mpirun -n "$RANKS" --oversubscribe "$BIN" --config config/demo.env verify --full --output "$OUT/dataset"
echo
echo "== index on $RANKS MPI ranks: the manifest, one parquet table with a row per URL"
mpirun -n "$RANKS" --oversubscribe "$BIN" --config config/demo.env index --output "$OUT/dataset"
echo
echo "== dedup: the same bytes, and the same photo resized or re-encoded (PDQ)"
"$BIN" --config config/demo.env dedup --output "$OUT/dataset"
echo
echo "== refresh: next month's list (the rows of the servers that answered, 5 gone, 10 new),"
echo "   the stored images carried over without a request or a copy, only the new ones fetched"
python3 - "$OUT/multimedia.txt" "$OUT/multimedia-next.txt" "$PORT" <<'PY'
import sys
src, out, port = sys.argv[1], sys.argv[2], sys.argv[3]
lines = open(src).read().splitlines()
answered = [f"127.0.0.{h}:{port}/img/" for h in (2, 3, 4, 5)]
rows = [l for l in lines[1:] if any(a in l for a in answered)][5:]
for i in range(10):
    url = f"http://127.0.0.2:{port}/img/w800-h600-next-{i}.jpg"
    rows.append("\t".join([str(5000000000 + i), "StillImage", "image/jpeg", url] + [""] * 9 + ["CC0 1.0", "Museum 2"]))
open(out, "w").write("\n".join([lines[0]] + rows) + "\n")
PY
"$BIN" --config config/demo.env refresh --from "$OUT/dataset" --input "$OUT/multimedia-next.txt" \
    --output "$OUT/dataset-next"
echo
echo "== the origin"
kill -TERM $ORIGIN
wait $ORIGIN || true
trap - EXIT
cat "$OUT/origin.txt"
echo
echo "demo: done; dataset in $OUT/dataset (shards under downloads/, summary in download_summary.json,"
echo "      the manifest under index/manifest/, each rank's metrics in metrics/local-rank-<n>.prom);"
echo "      next month's in $OUT/dataset-next (its plan and report under refresh/)"
