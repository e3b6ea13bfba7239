#!/usr/bin/env bash
# Builds today's benchmark code (crates/bench, crates/test-origin) against the product as it was
# at an earlier commit, so `make bench-download` can run the old codec and ours on the same files
# in one session. Prints the path of that dd-bench on the last line of stdout.
#
#   scripts/bench-baseline.sh REV
#
# The product's tree at REV comes from `git archive`; the benchmark crates and Cargo.lock are
# copied from the working tree over it (they only measure, and must print the same figures). The
# build uses the shared CARGO_TARGET_DIR, so only the product and the benchmark are compiled
# again, not their dependencies. The result is kept under
# ~/.cache/distributed-downloader/baseline/, keyed by REV and a hash of the benchmark's sources,
# and reused until either changes.
#
# Building overwrites $CARGO_TARGET_DIR/release/dd-bench: build today's afterwards (the Makefile
# does).
set -euo pipefail

say() { echo "bench-baseline.sh: $*" >&2; }
die() { echo "bench-baseline.sh: error: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: scripts/bench-baseline.sh REV (a commit of this repository)"
cd "$(dirname "$0")/.."
rev=$(git rev-parse --verify --quiet "$1^{commit}") ||
    die "$1 is not a commit of this repository; a shallow clone may lack it (git fetch --unshallow)"
bench_hash=$(find crates/bench crates/test-origin Cargo.lock scripts/bench-baseline.sh -type f -not -path '*/target/*' -print0 |
    sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)
cache="$HOME/.cache/distributed-downloader/baseline/${rev:0:12}-$bench_hash"
bin="$cache/dd-bench"
if [ -x "$bin" ]; then
    say "reusing $bin"
    echo "$bin"
    exit 0
fi

target="${CARGO_TARGET_DIR:-$HOME/.cache/distributed-downloader/target}"
tree="$cache/tree"
rm -rf "$cache"
mkdir -p "$tree"
git archive "$rev" | tar -x -C "$tree"
rm -rf "$tree/crates/bench" "$tree/crates/test-origin"
cp -r crates/bench crates/test-origin "$tree/crates/"
cp Cargo.lock "$tree/Cargo.lock"
# A version of its own keeps the old product's compiled units apart from today's in the shared
# target dir. With the same name and version, cargo would take them for one another: it keys
# path packages by their place in the workspace, and tar gives the old sources old timestamps,
# so each build could silently reuse what the other compiled.
sed -i "0,/^version = \"[^\"]*\"/s//version = \"0.0.0-baseline-${rev:0:12}\"/" "$tree/Cargo.toml"
grep -q "^version = \"0.0.0-baseline-${rev:0:12}\"" "$tree/Cargo.toml" ||
    die "could not give the product at ${rev:0:12} a version of its own in its Cargo.toml"
say "building dd-bench against the product at ${rev:0:12} (a release build of the product, a few minutes)"
(cd "$tree" && CARGO_TARGET_DIR="$target" cargo build --release -p dd-bench) >&2 ||
    die "the benchmark does not build against ${rev:0:12}; pick a later baseline (BENCH_BASELINE=...)"
cp "$target/release/dd-bench" "$bin.tmp"
mv "$bin.tmp" "$bin"
rm -rf "$tree"
echo "$bin"
