#!/usr/bin/env bash
# Installs, configures and starts a real one-node Slurm on this (Debian 12)
# machine, for the test suite and CI. Needs root. Only loopback is used: the
# controller and the node both live at 127.0.0.1.
#
#   scripts/slurm-cluster.sh [start]   install + configure + start (idempotent)
#   scripts/slurm-cluster.sh stop      stop slurmd and slurmctld (munged stays)
#   scripts/slurm-cluster.sh status    print sinfo and squeue
#
# The node advertises more CPUs than the machine has (SLURM_CLUSTER_CPUS,
# default 8, with SlurmdParameters=config_overrides) so that several small
# MPI jobs can share it at once. No cgroups, no accounting database (sacct
# does not work; use squeue -t all / scontrol show job within MinJobAge).
# On a cold start with no job step alive, jobs recovered from an earlier run's
# state are cancelled. Logs: /var/log/slurm/{slurmctld,slurmd}.log.
set -euo pipefail
# shellcheck source=lib/apt.sh
. "$(dirname "$0")/lib/apt.sh"

CMD="${1:-start}"

CLUSTER_NAME="${SLURM_CLUSTER_NAME:-testcluster}"
NODE_CPUS="${SLURM_CLUSTER_CPUS:-8}"
PARTITION="debug"
WAIT_SECS="${SLURM_CLUSTER_WAIT:-60}"

CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
LOG_DIR=/var/log/slurm
STATE_DIR=/var/lib/slurm/slurmctld
SPOOL_DIR=/var/spool/slurmd
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
CTLD_LOG="$LOG_DIR/slurmctld.log"
SLURMD_LOG="$LOG_DIR/slurmd.log"

MUNGE_KEY=/etc/munge/munge.key
MUNGE_SOCKET_DIR=/run/munge

# libpmix-dev: Slurm's mpi/pmix plugin dlopen()s the unversioned libpmix.so,
# which only the -dev package ships (libopenmpi-dev pulls it in as well).
PKGS=(slurmctld slurmd slurm-client munge slurm-wlm-basic-plugins libpmix-dev)

NODE="$(hostname -s)"

say() { echo "slurm-cluster: $*"; }
die() { echo "slurm-cluster: error: $*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts daemons)"
}

# pid from a pid file if that process is alive and is the named program.
live_pid() {
    local pidfile="$1" prog="$2" pid
    [ -r "$pidfile" ] || return 1
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$prog" ] || return 1
    echo "$pid"
}

# pids of processes whose executable name is exactly $1 (no pattern matching on
# command lines), for daemons that lost their pid file.
exact_pids() {
    local prog="$1" d state
    for d in /proc/[0-9]*; do
        [ "$(cat "$d/comm" 2>/dev/null)" = "$prog" ] || continue
        state="$(awk '/^State:/ {print $2}' "$d/status" 2>/dev/null || true)"
        [ "$state" = Z ] || [ -z "$state" ] || echo "${d#/proc/}"
    done
    return 0
}

running() { [ -n "$(exact_pids "$1")" ]; }

install_packages() {
    apt_install_missing "${PKGS[@]}" | sed 's/^/slurm-cluster: /' || die "apt-get install ${PKGS[*]} failed"
}

start_munge() {
    install -d -o munge -g munge -m 0700 /etc/munge
    if [ ! -s "$MUNGE_KEY" ]; then
        say "creating $MUNGE_KEY"
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --force --keyfile="$MUNGE_KEY"
        else
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1 count=1024 status=none
        fi
    fi
    chown munge:munge "$MUNGE_KEY"
    chmod 0600 "$MUNGE_KEY"
    install -d -o munge -g munge -m 0755 "$MUNGE_SOCKET_DIR"
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge

    local i
    # A munged that is still starting (or shutting down) gets 5 s to settle.
    for i in $(seq 1 25); do
        running munged || break
        if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    if running munged; then
        die "munged is running but does not answer (munge -n | unmunge fails)"
    fi
    say "starting munged"
    # 9>&-: the daemons must not inherit the lock of this script (they would hold it forever).
    runuser -u munge -- /usr/sbin/munged 9>&-
    for i in $(seq 1 50); do
        if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    tail -n 20 /var/log/munge/munged.log >&2 2>/dev/null || true
    die "munged did not come up within 10 s"
}

real_memory_mb() {
    local kb
    kb="$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
    # a bit below the total, so slurmd never finds less than configured
    echo $(( kb / 1024 * 9 / 10 ))
}

render_conf() {
    cat <<EOF
# Written by scripts/slurm-cluster.sh: a one-node test cluster on loopback.
ClusterName=$CLUSTER_NAME
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$CTLD_LOG
SlurmdLogFile=$SLURMD_LOG
SlurmctldDebug=info
SlurmdDebug=info

# No cgroups anywhere.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobContainerType=job_container/none
SwitchType=switch/none
MpiDefault=pmix

# No accounting database.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none

# Scheduling: CPUs are the only consumable, so memory requests do not block.
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
PriorityType=priority/basic

# Timers, kept short for tests.
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=300
KillWait=5
OverTimeLimit=0
Waittime=0
MessageTimeout=10

# The node claims more CPUs than the machine has, so that several small jobs
# run side by side.
SlurmdParameters=config_overrides
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$NODE_CPUS RealMemory=$(real_memory_mb) State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
}

# Returns 0 if slurm.conf changed.
write_conf() {
    install -d -m 0755 "$CONF_DIR" "$LOG_DIR" /var/lib/slurm
    install -d -m 0755 "$STATE_DIR" "$SPOOL_DIR"
    local tmp
    tmp="$(mktemp)"
    render_conf >"$tmp"
    if [ -f "$CONF" ] && cmp -s "$tmp" "$CONF"; then
        rm -f "$tmp"
        return 1
    fi
    say "writing $CONF"
    install -m 0644 "$tmp" "$CONF"
    rm -f "$tmp"
    return 0
}

stop_daemon() {
    local prog="$1" pidfile="$2" pids i
    pids="$(live_pid "$pidfile" "$prog" || true)"
    [ -n "$pids" ] || pids="$(exact_pids "$prog" | tr '\n' ' ')"
    [ -n "${pids// /}" ] || return 0
    say "stopping $prog (pid $pids)"
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    for i in $(seq 1 50); do
        running "$prog" || { rm -f "$pidfile"; return 0; }
        sleep 0.2
    done
    # shellcheck disable=SC2086
    kill -KILL $(exact_pids "$prog") 2>/dev/null || true
    sleep 0.5
    rm -f "$pidfile"
}

print_logs() {
    local f
    for f in "$CTLD_LOG" "$SLURMD_LOG"; do
        echo "----- tail $f -----" >&2
        tail -n 30 "$f" >&2 2>/dev/null || echo "(no log)" >&2
    done
}

node_state() {
    sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n1
}

wait_idle() {
    local deadline=$((SECONDS + WAIT_SECS)) state="" resumed=0
    while [ "$SECONDS" -lt "$deadline" ]; do
        state="$(node_state || true)"
        case "$state" in
            idle|mixed|allocated|completing)
                say "node $NODE is $state"
                return 0 ;;
            down*|drain*|drained*|fail*)
                if [ "$resumed" -lt 3 ]; then
                    say "node $NODE is $state, resuming it"
                    scontrol update nodename="$NODE" state=resume 2>/dev/null || true
                    resumed=$((resumed + 1))
                fi ;;
        esac
        running slurmctld || { print_logs; die "slurmctld exited"; }
        running slurmd || { print_logs; die "slurmd exited"; }
        sleep 1
    done
    print_logs
    die "node $NODE not idle after ${WAIT_SECS} s (state: '${state:-unknown}')"
}

start_daemons() {
    local changed="$1"
    if [ "$changed" -eq 1 ]; then
        # A new configuration: restart whatever runs with the old one.
        stop_daemon slurmd "$SLURMD_PID"
        stop_daemon slurmctld "$CTLD_PID"
    fi
    if ! running slurmctld; then
        say "starting slurmctld"
        slurmctld 9>&- || { print_logs; die "slurmctld failed to start"; }
    fi
    if ! running slurmd; then
        say "starting slurmd"
        slurmd -N "$NODE" 9>&- || { print_logs; die "slurmd failed to start"; }
    fi
    # daemons detach; give them a moment before judging them
    local i
    for i in $(seq 1 25); do
        if running slurmctld && running slurmd && scontrol ping >/dev/null 2>&1; then
            break
        fi
        sleep 0.2
    done
}

# Jobs that slurmctld recovers from its state files but that no process runs
# any more: left over from an earlier session whose processes were all ended
# (as in CI). They would hold CPUs until their time limit, or for ever.
cancel_leftover_jobs() {
    local ids
    ids="$(squeue -h -t PENDING,CONFIGURING,RUNNING,SUSPENDED -o '%i' 2>/dev/null | tr '\n' ' ')"
    [ -n "${ids// /}" ] || return 0
    say "cancelling jobs left over from an earlier run: $ids"
    # shellcheck disable=SC2086
    scancel $ids 2>/dev/null || true
    local i
    for i in $(seq 1 30); do
        [ -z "$(squeue -h -t PENDING,CONFIGURING,RUNNING,SUSPENDED,COMPLETING -o '%i' 2>/dev/null)" ] && return 0
        sleep 1
    done
    say "warning: some leftover jobs are still completing"
}

cmd_start() {
    need_root
    # Tests may start the cluster from several threads at once: one start at a time.
    exec 9>/run/slurm-cluster.lock
    flock 9
    install_packages
    start_munge
    local changed=0 cold=0
    if write_conf; then changed=1; fi
    # A cold start with no job step alive means every recovered job is dead.
    if ! running slurmctld && [ -z "$(exact_pids slurmstepd)" ]; then cold=1; fi
    if [ "$cold" -eq 1 ]; then
        # The PMIx plugin makes /tmp/spmix_appdir_<uid>_<job>.<step> per step and refuses to
        # start a step whose folder exists: after a lost state (job ids counting from 1 again),
        # leftovers of dead steps would make steps fail to launch.
        rm -rf /tmp/spmix_appdir_* 2>/dev/null || true
    fi
    start_daemons "$changed"
    wait_idle
    if [ "$cold" -eq 1 ]; then cancel_leftover_jobs; fi
    say "ready: partition $PARTITION, node $NODE, $NODE_CPUS CPUs"
}

cmd_stop() {
    need_root
    stop_daemon slurmd "$SLURMD_PID"
    stop_daemon slurmctld "$CTLD_PID"
    say "stopped"
}

cmd_status() {
    local rc=0
    if running slurmctld; then say "slurmctld running"; else say "slurmctld not running"; rc=1; fi
    if running slurmd; then say "slurmd running"; else say "slurmd not running"; rc=1; fi
    sinfo 2>&1 || rc=1
    squeue 2>&1 || rc=1
    return "$rc"
}

case "$CMD" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    restart) cmd_stop; cmd_start ;;
    *) echo "usage: $0 [start|stop|status|restart]" >&2; exit 2 ;;
esac
