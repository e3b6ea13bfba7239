#!/usr/bin/env bash
# Installs the system packages the build and the tests need, idempotently.
# On a cluster without root, skip this script and `module load` OpenMPI and HDF5
# instead (see docs/install.md, "Install on a cluster").
set -euo pipefail

# openssl: the tests make a throwaway certificate authority for their TLS server.
# python3-venv: scripts/python-env.sh makes the tests' Python (h5py and PIL from here, pyarrow).
PKGS=(libopenmpi-dev openmpi-bin libhdf5-dev libclang-dev clang pkg-config libturbojpeg0-dev python3-h5py python3-pil python3-venv openssl)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

# The tests' Python, after the packages it builds on.
python_env() {
    "$(dirname "$0")/python-env.sh" | sed '$d'
    "$(dirname "$0")/croissant-env.sh" | sed '$d'
}

if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: system packages already installed"
    python_env
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages: ${missing[*]}" >&2
    echo "setup: run this script as root, or load them with 'module load' on a cluster (see docs/install.md)" >&2
    exit 1
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
python_env
echo "setup: done"
