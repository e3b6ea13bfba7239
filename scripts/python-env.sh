#!/usr/bin/env bash
# The Python the tests read the output with, as a user would: Debian's python3 with its h5py and
# PIL (python3-h5py, python3-pil, from scripts/setup.sh), plus pyarrow from PyPI (Debian 12 has
# no package for it), in a venv that sees the system's packages. Idempotent: a venv whose Python
# already imports them is left as it is. Prints the venv's python on its last line.
#
#   scripts/python-env.sh            # create or check ~/.cache/distributed-downloader/pyenv
#   DD_PYENV=/path scripts/python-env.sh
set -euo pipefail

VENV="${DD_PYENV:-$HOME/.cache/distributed-downloader/pyenv}"
PYARROW="pyarrow==18.1.0"
MODULES="import h5py, PIL, pyarrow, pyarrow.dataset"

if [ -x "$VENV/bin/python3" ] && "$VENV/bin/python3" -c "$MODULES" 2>/dev/null; then
    echo "python-env: $VENV ready"
    echo "$VENV/bin/python3"
    exit 0
fi
if [ ! -x "$VENV/bin/python3" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
echo "python-env: installing $PYARROW into $VENV"
"$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check "$PYARROW"
"$VENV/bin/python3" -c "$MODULES"
echo "$VENV/bin/python3"
