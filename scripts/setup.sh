#!/usr/bin/env bash
# Installs the system packages the build and the tests need, idempotently.
# On a cluster without root, skip this script and `module load` OpenMPI and HDF5
# instead (see docs/install.md, "Install on a cluster").
set -euo pipefail

# openssl: the tests make a throwaway certificate authority for their TLS server.
PKGS=(libopenmpi-dev openmpi-bin libhdf5-dev libclang-dev clang pkg-config libturbojpeg0-dev python3-h5py python3-pil openssl)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: system packages already installed"
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
echo "setup: done"
