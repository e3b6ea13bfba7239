#!/usr/bin/env bash
# DuckDB and polars for the comparisons of `make bench-prep` and `make bench-refresh`, in a Python
# venv of its own, idempotently. DuckDB's version is pinned (DUCKDB_VERSION), so that figures of
# different days compare the same yardstick; `make test` never needs it.
# Both are only yardsticks for the benchmark: the product never uses them (the product's polars
# is the Rust crate). Polars is optional: when it does not install, the bench compares with
# DuckDB alone.
#
#   scripts/duckdb.sh install    create the venv and pip-install duckdb if missing;
#                                prints `python=<path of the venv's python>` on the last line
#   scripts/duckdb.sh python     prints that path if DuckDB is installed there, else exits 1
#
# The venv lives in $DD_DUCKDB_VENV (default ~/.cache/distributed-downloader/duckdb-venv), outside
# the clone, so a second clone reuses it. Needs python3 with the venv module (Debian: python3-venv)
# and network access to PyPI the first time.
set -euo pipefail

VENV="${DD_DUCKDB_VENV:-$HOME/.cache/distributed-downloader/duckdb-venv}"
DUCKDB_VERSION="2.0.1"
PY="$VENV/bin/python"

say() { echo "duckdb.sh: $*" >&2; }
die() { echo "duckdb.sh: error: $*" >&2; exit 1; }

has_duckdb() {
    [ -x "$PY" ] && "$PY" -c "import duckdb, sys; sys.exit(duckdb.__version__ != '$DUCKDB_VERSION')" 2>/dev/null
}
has_polars() { [ -x "$PY" ] && "$PY" -c 'import polars' 2>/dev/null; }

install_polars() {
    has_polars && return 0
    say "installing polars from PyPI (optional: the second yardstick of bench-prep)"
    "$PY" -m pip install --quiet --disable-pip-version-check polars \
        || say "pip install polars failed; bench-prep will compare with DuckDB only"
}

install() {
    has_duckdb && has_polars && return 0
    command -v python3 >/dev/null || die "python3 is missing (Debian: apt-get install python3 python3-venv)"
    mkdir -p "$(dirname "$VENV")"
    # Two bench runs at once must not build the same venv twice.
    exec 9>"$VENV.lock"
    flock 9
    has_duckdb && has_polars && return 0
    if [ ! -x "$PY" ]; then
        say "creating $VENV"
        python3 -m venv "$VENV" \
            || die "python3 -m venv failed; on Debian/Ubuntu install python3-venv (apt-get install python3-venv)"
    fi
    if ! "$PY" -m pip --version >/dev/null 2>&1; then
        "$PY" -m ensurepip --upgrade >/dev/null \
            || die "the venv has no pip; on Debian/Ubuntu install python3-venv and python3-pip"
    fi
    if ! has_duckdb; then
        say "installing duckdb $DUCKDB_VERSION from PyPI"
        "$PY" -m pip install --quiet --disable-pip-version-check "duckdb==$DUCKDB_VERSION" \
            || die "pip install duckdb failed (is PyPI reachable? set PIP_INDEX_URL for a mirror)"
        has_duckdb || die "duckdb was installed but does not import in $PY"
        say "installed duckdb $("$PY" -c 'import duckdb; print(duckdb.__version__)')"
    fi
    install_polars
}

case "${1:-install}" in
    install)
        install
        echo "python=$PY"
        ;;
    python)
        has_duckdb || exit 1
        echo "$PY"
        ;;
    *) die "usage: scripts/duckdb.sh install|python" ;;
esac
