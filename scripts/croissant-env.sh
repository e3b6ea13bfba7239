#!/usr/bin/env bash
# The Croissant validator (`mlcroissant validate`) the export test runs on each croissant.json,
# in a venv of its own (its dependencies would upgrade the numpy Debian's h5py needs).
# Idempotent; never fails the set-up: without it, the test checks the file's structure instead
# and says so. Prints the validator's path on its last line, or nothing.
#
#   scripts/croissant-env.sh         # create or check ~/.cache/distributed-downloader/croissant-env
set -uo pipefail

VENV="${DD_CROISSANT_ENV:-$HOME/.cache/distributed-downloader/croissant-env}"
PACKAGE="mlcroissant==1.1.1"

if [ -x "$VENV/bin/mlcroissant" ] && "$VENV/bin/python3" -c "import mlcroissant" 2>/dev/null; then
    echo "croissant-env: $VENV ready"
    echo "$VENV/bin/mlcroissant"
    exit 0
fi
echo "croissant-env: installing $PACKAGE into $VENV"
if /usr/bin/python3 -m venv "$VENV" && "$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check "$PACKAGE" \
    && "$VENV/bin/python3" -c "import mlcroissant"; then
    echo "$VENV/bin/mlcroissant"
else
    echo "croissant-env: mlcroissant did not install; the export test checks croissant.json's structure instead" >&2
fi
exit 0
