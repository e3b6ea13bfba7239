# Sourced by the scripts that install Debian packages for the tests (slurm-cluster.sh,
# prometheus.sh, nginx.sh). Needs root.
#
# apt_install_missing PKG...: installs the packages not installed yet, without letting their
# maintainer scripts start any service (there is no init system here, and the tests start their
# own daemons); runs `apt-get update` only if a first attempt fails. Returns 1 on failure.
apt_install_missing() {
    local missing=() p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    # One install at a time across these scripts: tests start several at once (Slurm's and
    # Prometheus's first thing in `make test`), and a second apt-get fails at once on dpkg's
    # lock, as does one that finds the other's policy-rc.d gone. Any other apt-get holding
    # dpkg's lock is waited for (up to 10 minutes) rather than failed on. Callers run this in a
    # pipeline, so the lock is let go when this subshell ends.
    exec 8>/run/distributed-downloader-apt.lock
    flock 8
    echo "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local policy=/usr/sbin/policy-rc.d created_policy=0 ok=1
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created_policy=1
    fi
    local wait=(-o DPkg::Lock::Timeout=600)
    if ! apt-get "${wait[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        apt-get "${wait[@]}" update -qq || true
        apt-get "${wait[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || ok=0
    fi
    if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi
    [ "$ok" -eq 1 ]
}
