#!/usr/bin/env bash
# Installs Debian's Prometheus (the server and promtool) for the metrics tests, idempotently.
# It does not start a server: the tests start their own, on loopback, with their own config.
#
#   scripts/prometheus.sh install    install if missing; prints the paths of prometheus and promtool
set -euo pipefail

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
    say "installing prometheus"
    export DEBIAN_FRONTEND=noninteractive
    # The package's maintainer scripts would start the service; nothing here may start it.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created_policy=1
    fi
    local ok=1
    if ! apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; then
        apt-get update -qq || true
        apt-get install -y -qq --no-install-recommends prometheus >/dev/null || ok=0
    fi
    if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi
    [ "$ok" -eq 1 ] || die "apt-get install prometheus failed"
}

case "${1:-install}" in
    install)
        install_packages
        echo "prometheus=$(command -v prometheus)"
        echo "promtool=$(command -v promtool)"
        ;;
    *) die "usage: scripts/prometheus.sh install" ;;
esac
