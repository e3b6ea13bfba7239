#!/usr/bin/env bash
# The demo: the whole pipeline that exists so far, on an embedded input that needs no internet.
# Usage: scripts/demo.sh PATH_TO_BINARY
set -euo pipefail
BIN=${1:?usage: scripts/demo.sh PATH_TO_BINARY}
cd "$(dirname "$0")/.."
OUT=${DEMO_OUT:-demo-out}
rm -rf "$OUT" && mkdir -p "$OUT"

# A small GBIF multimedia table whose images live on loopback hosts, with the usual dirt:
# a sound file, a row without identifier, a material citation-free duplicate URL, a bad URL,
# and a truncated line.
python3 - "$OUT/multimedia.txt" <<'PY'
import sys
cols = ["gbifID","type","format","identifier","references","title","description","source","audience",
        "created","creator","contributor","publisher","license","rightsHolder"]
rows = []
gid = 4000000000
for host in range(2, 6):
    for i in range(40 * host):
        gid += 1
        url = f"http://127.0.0.{host}:8701/img/{host}-{i}.jpg"
        rows.append([str(gid), "StillImage", "image/jpeg", url] + [""] * 9 + ["CC-BY 4.0", f"Museum {host}"])
rows.append([str(gid + 1), "Sound", "audio/mpeg", "http://127.0.0.2:8701/a.mp3"] + [""] * 11)
rows.append([str(gid + 2), "StillImage", "image/jpeg", ""] + [""] * 11)
rows.append([str(gid + 3), "StillImage", "image/jpeg", "http://127.0.0.2:8701/img/2-0.jpg"] + [""] * 11)
rows.append([str(gid + 4), "", "image/png", "ftp://127.0.0.3/x.png"] + [""] * 11)
with open(sys.argv[1], "w") as f:
    f.write("\t".join(cols) + "\n")
    for r in rows:
        f.write("\t".join(r) + "\n")
    f.write(f"{gid + 5}\tStillImage\timage/jpeg\n")
PY

echo "== prep"
"$BIN" prep --input "$OUT/multimedia.txt" --output "$OUT/dataset" --batch-size 50
echo
echo "== layout"
find "$OUT/dataset/urls" -name '*.parquet' | sort | head -20
echo
echo "demo: done; outputs in $OUT/dataset"
