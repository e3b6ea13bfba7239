#!/usr/bin/env bash
# Installs Debian's nginx for the rate-limit tests and the politeness benchmark, idempotently.
# It does not start or enable a server: the tests start their own (test-origin's `nginx`
# module), on loopback addresses and their own ports, with their own config.
#
# The package is `nginx`. Debian 12's `nginx-light` is only `nginx` plus the echo module (a
# metapackage since 1.22.1-8), so it would install more, not less; `limit_req` is built in.
#
#   scripts/nginx.sh install    install if missing; prints the path of nginx
set -euo pipefail
# shellcheck source=lib/apt.sh
. "$(dirname "$0")/lib/apt.sh"

say() { echo "nginx.sh: $*"; }
die() { echo "nginx.sh: error: $*" >&2; exit 1; }

# Debian puts nginx in /usr/sbin, which a normal user's PATH may lack.
find_nginx() {
    command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true
}

# The package's postinst starts nginx on port 80 where an init system lets it; apt.sh's
# policy-rc.d forbids that, and this makes sure of it: nothing of the package stays running.
stop_system_service() {
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl disable --now nginx >/dev/null 2>&1 || true
    fi
    if [ -s /run/nginx.pid ]; then
        say "stopping the nginx the package started (pid $(cat /run/nginx.pid))"
        "$(find_nginx)" -s quit >/dev/null 2>&1 || kill "$(cat /run/nginx.pid)" 2>/dev/null || true
        rm -f /run/nginx.pid
    fi
}

install_packages() {
    [ -n "$(find_nginx)" ] && return 0
    [ "$(id -u)" -eq 0 ] || die "nginx is missing and installing it needs root (apt-get install nginx)"
    exec 9>/run/nginx-install.lock
    flock 9
    [ -n "$(find_nginx)" ] && return 0
    apt_install_missing nginx | sed 's/^/nginx.sh: /' || die "apt-get install nginx failed"
    stop_system_service
    [ -n "$(find_nginx)" ] || die "the nginx package is installed but no nginx binary was found"
}

case "${1:-install}" in
    install)
        install_packages
        echo "nginx=$(find_nginx)"
        ;;
    *) die "usage: scripts/nginx.sh install" ;;
esac
