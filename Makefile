# The two commands of the README: `make demo` and `make test`. Both install what is missing first.
#
# Builds go to a shared target folder outside the clone, so a second clone (or CI) builds warm.
CARGO_TARGET_DIR ?= $(HOME)/.cache/distributed-downloader/target
export CARGO_TARGET_DIR
BIN := $(CARGO_TARGET_DIR)/debug/distributed-downloader
ORIGIN_BIN := $(CARGO_TARGET_DIR)/debug/test-origin
BENCH_BIN := $(CARGO_TARGET_DIR)/release/dd-bench

# OpenMPI refuses to run as root unless told; only set when we are root.
ifeq ($(shell id -u),0)
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
endif

.PHONY: setup build test demo bench bench-prep bench-download bench-politeness bench-scale bench-store bench-dedup bench-index bench-export bench-refresh

setup:
	./scripts/setup.sh

# The workspace: the product, the test origin and the benchmarks (see docs/architecture.md).
build: setup
	cargo build --locked --workspace

# setup installed python3-h5py, so a test that finds no Python with h5py fails instead of
# skipping its h5py check (tests/util/python.rs). The tests run under cargo-nextest when it is
# installed (.config/nextest.toml: one pool of 8 for every test binary), else under cargo test
# with 8 threads per binary; then the doc examples compile.
TEST_THREADS ?= 8
test: setup
	cargo build --locked --workspace --tests --bins
	if cargo nextest --version >/dev/null 2>&1; then \
		DD_REQUIRE_H5PY=1 cargo nextest run --locked --workspace --no-fail-fast --test-threads $(TEST_THREADS); \
	else \
		echo "make test: cargo-nextest not found; running cargo test"; \
		DD_REQUIRE_H5PY=1 cargo test --locked --workspace --no-fail-fast -- --test-threads $(TEST_THREADS); \
	fi
	cargo test --locked --workspace --doc

demo: build
	./scripts/demo.sh "$(BIN)" "$(ORIGIN_BIN)"

# Generates a 10M-row GBIF-like multimedia.txt and prints prep's wall time and peak RSS.
BENCH_ROWS ?= 10000000
BENCH_DIR ?= /tmp/distributed-downloader-bench
bench-prep: setup
	cargo build --locked --release --workspace
	mode=$(or $(BENCH_DUCKDB),auto); py=; \
	if [ "$$mode" != off ]; then py=$$(./scripts/duckdb.sh install | sed -n 's/^python=//p'); fi; \
	$(BENCH_BIN) prep --rows $(BENCH_ROWS) --dir $(BENCH_DIR) --duckdb "$$mode" $${py:+--duckdb-python "$$py"}

# Prints the codec limit (decode+resize+encode+hash, no network) and the end-to-end download
# rate on the same local corpus of photos, and their ratio; then the CPU per image of the codec
# at BENCH_BASELINE (the commit before issue 19's work) and ours, run in turn on the same files.
# BENCH_BASELINE=none skips that comparison (it costs a release build of the old product once).
BENCH_BASELINE ?= fed1406ea6da6f4d1ed75d7ee85f2b0167eb303d
bench-download: setup
	baseline=; if [ "$(BENCH_BASELINE)" != none ]; then \
		baseline=$$(./scripts/bench-baseline.sh $(BENCH_BASELINE)) || exit 1; fi; \
	cargo build --locked --release --workspace && \
	$(BENCH_BIN) download --dir $(BENCH_DIR)-download \
		$${baseline:+--baseline-bin "$$baseline" --baseline-label $(shell echo $(BENCH_BASELINE) | cut -c1-7)}

# Runs the download on 1 rank, then on 4 (mpirun), against local hosts limited to 2, 8 and 30
# req/s, two with random 503s and one unlimited (240 s of URLs at 2 req/s), then against real
# nginx limit_req hosts (rates 0.5-20 req/s, bursts, nodelay and delay mode, Retry-After;
# scripts/nginx.sh installs nginx; 240 s of URLs per shape), and prints per host what the
# servers saw and the rate-control goals as PASS or MISS. BENCH_SCALE=0.25 gives a quick run.
BENCH_SCALE ?= 1
bench-politeness: setup
	cargo build --locked --release --workspace
	$(BENCH_BIN) politeness --scale $(BENCH_SCALE) --dir $(BENCH_DIR)-politeness

# Builds a dataset of GBIF's shape (545 servers, about 20,000 batches) with committed shards and
# prints rank 0's planning time and peak memory with 1 and 3 shards per batch.
bench-scale: setup
	cargo build --locked --release --workspace
	$(BENCH_BIN) scale --dir $(BENCH_DIR)-scale

# Builds a dataset of GBIF's shape (about 20,000 batches, every row a stored image, 1% of the
# batches left mid-merge) and prints the start of a download on it, `verify` beside reading every
# shard, and `verify --full` beside decoding every image.
bench-store: setup
	cargo build --locked --release --workspace
	$(BENCH_BIN) store --dir $(BENCH_DIR)-store

# Generates a manifest of 10M rows (times BENCH_SCALE) with planted same-bytes and near-duplicate
# groups and prints `dedup`'s wall time, rows/s and peak RSS, and whether it found exactly those.
bench-dedup: setup
	cargo build --locked --release --workspace
	$(BENCH_BIN) dedup --scale $(BENCH_SCALE) --dir $(BENCH_DIR)-dedup

# Generates a dataset of 1M rows (times BENCH_SCALE) of committed shards and prints `index`'s
# wall time, rows/s and peak RSS, then again with every batch unchanged.
bench-index: setup
	cargo build --locked --release --workspace
	$(BENCH_BIN) index --scale $(BENCH_SCALE) --dir $(BENCH_DIR)-index

# `export --format webdataset` of 100k stored images (times BENCH_SCALE), against `tar` of the
# same bytes: images/s, MB/s and peak RSS.
bench-export: setup
	cargo build --locked --release --workspace
	$(BENCH_BIN) export --scale $(BENCH_SCALE) --dir $(BENCH_DIR)-export

# Generates an old manifest of BENCH_ROWS rows (10M) and a new snapshot (5% of them gone, 3% under
# another licence, 10% new) and prints the refresh diff's wall time and peak RSS beside DuckDB doing
# the same anti-joins on the same files (scripts/duckdb.sh installs it; BENCH_DUCKDB=off skips it),
# and whether both found exactly the planted classes.
bench-refresh: setup
	cargo build --locked --release --workspace
	mode=$(or $(BENCH_DUCKDB),auto); py=; \
	if [ "$$mode" != off ]; then py=$$(./scripts/duckdb.sh install | sed -n 's/^python=//p'); fi; \
	$(BENCH_BIN) refresh-diff --rows $(BENCH_ROWS) --dir $(BENCH_DIR)-refresh --duckdb "$$mode" $${py:+--duckdb-python "$$py"}

bench: bench-prep bench-download bench-politeness bench-scale bench-store bench-dedup bench-index bench-export bench-refresh
