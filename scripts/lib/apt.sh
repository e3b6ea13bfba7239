# Sourced by the scripts that install Debian packages for the tests (slurm-cluster.sh,
# prometheus.sh). Needs root.
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
    echo "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local policy=/usr/sbin/policy-rc.d created_policy=0 ok=1
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created_policy=1
    fi
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        apt-get update -qq || true
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || ok=0
    fi
    if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi
    [ "$ok" -eq 1 ]
}
