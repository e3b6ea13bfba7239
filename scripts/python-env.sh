#!/usr/bin/env bash
# The Python the tests read the output with, as a user would: Debian's python3 with its h5py and
# PIL (python3-h5py, python3-pil, from scripts/setup.sh), plus pyarrow, Hugging Face `datasets`
# and `webdataset` from PyPI (Debian 12 has no package for them), in a venv that sees the system's
# packages. numpy stays below 2, which Debian's h5py was built for; the versions are pinned to a
# set that imports together. Idempotent: a venv whose Python
# already imports them is left as it is. Prints the venv's python on its last line.
#
#   scripts/python-env.sh            # create or check ~/.cache/distributed-downloader/pyenv
#   DD_PYENV=/path scripts/python-env.sh
set -euo pipefail

VENV="${DD_PYENV:-$HOME/.cache/distributed-downloader/pyenv}"
PACKAGES=("pyarrow==18.1.0" "datasets==3.1.0" "numpy==1.26.4" "pandas==3.0.6" "huggingface_hub==2.4.0" "webdataset==1.0.2")
MODULES="import h5py, PIL, pyarrow, pyarrow.dataset, datasets, webdataset, numpy; assert numpy.__version__.startswith('1.'), numpy.__version__"

if [ -x "$VENV/bin/python3" ] && "$VENV/bin/python3" -c "$MODULES" 2>/dev/null; then
    echo "python-env: $VENV ready"
    echo "$VENV/bin/python3"
    exit 0
fi
if [ ! -x "$VENV/bin/python3" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
echo "python-env: installing ${PACKAGES[*]} into $VENV"
"$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check "${PACKAGES[@]}"
"$VENV/bin/python3" -c "$MODULES"
echo "$VENV/bin/python3"
