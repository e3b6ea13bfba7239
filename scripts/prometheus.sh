#!/usr/bin/env bash
# Installs Debian's Prometheus (the server and promtool) for the metrics tests, idempotently.
# It does not start a server: the tests start their own, on loopback, with their own config.
#
#   scripts/prometheus.sh install    install if missing; prints the paths of prometheus and promtool
set -euo pipefail
# shellcheck source=lib/apt.sh
. "$(dirname "$0")/lib/apt.sh"

say() { echo "prometheus.sh: $*"; }
die() { echo "prometheus.sh: error: $*" >&2; exit 1; }

install_packages() {
    if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || die "promtool is missing and installing it needs root (apt-get install prometheus)"
    exec 9>/run/prometheus-install.lock
    flock 9
    command -v promtool >/dev/null && command -v prometheus >/dev/null && return 0
    apt_install_missing prometheus | sed 's/^/prometheus.sh: /' || die "apt-get install prometheus failed"
}

case "${1:-install}" in
    install)
        install_packages
        echo "prometheus=$(command -v prometheus)"
        echo "promtool=$(command -v promtool)"
        ;;
    *) die "usage: scripts/prometheus.sh install" ;;
esac
