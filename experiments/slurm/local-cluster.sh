#!/usr/bin/env bash
# Starts a single-node Slurm cluster on this machine (as root), for tests and
# for trying the array job before a real cluster: installs Debian's slurmd,
# slurmctld and munge when missing, writes /etc/slurm/slurm.conf for this
# node, starts munged, slurmctld and slurmd, and waits until the node is idle.
#
#   experiments/slurm/local-cluster.sh          # start (idempotent: a running cluster is kept)
#   experiments/slurm/local-cluster.sh stop     # stop the daemons
#
# Exits 0 when `sinfo` shows the node idle, non-zero with a one-line reason otherwise.
set -euo pipefail

conf=/etc/slurm/slurm.conf
state=/var/lib/netdsl-slurm

die() { echo "local-cluster: $*" >&2; exit 1; }

if [ "${1:-}" = stop ]; then
    pkill -x slurmd 2>/dev/null || true
    pkill -x slurmctld 2>/dev/null || true
    exit 0
fi

[ "$(id -u)" = 0 ] || die "needs root (it writes /etc/slurm and starts daemons)"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
    || ! command -v sbatch >/dev/null; then
    echo "local-cluster: installing slurmd, slurmctld, munge" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurmd slurmctld slurm-client munge >&2 \
        || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurmd slurmctld slurm-client munge >&2; } \
        || die "could not install slurmd, slurmctld and munge"
fi

if sinfo -h -o %t 2>/dev/null | grep -qx idle; then
    exit 0 # already running
fi

host=$(hostname -s)
# The node's hardware as slurmd sees it: "NodeName=vm CPUs=2 ... RealMemory=24105".
node=$(slurmd -C | head -n 1)
[ -n "$node" ] || die "slurmd -C printed nothing"
mkdir -p /etc/slurm "$state/ctld" "$state/d" /var/log/slurm /run/munge
cat > "$conf" <<CONF
# Written by experiments/slurm/local-cluster.sh: one node, root, no cgroups.
ClusterName=netdsl
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
$node State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

# munge: its key must belong to the munge user and be private.
if [ ! -s /etc/munge/munge.key ]; then
    (command -v mungekey >/dev/null && mungekey --create >&2) \
        || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown -R munge:munge /etc/munge /run/munge 2>/dev/null || true
chmod 0400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged || die "munged did not start"

pkill -x slurmctld 2>/dev/null || true
pkill -x slurmd 2>/dev/null || true
sleep 1
slurmctld -c -i || die "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
slurmd || die "slurmd did not start (see /var/log/slurm/slurmd.log)"

for _ in $(seq 60); do
    if sinfo -h -o %t 2>/dev/null | grep -qx idle; then
        echo "local-cluster: node $host idle ($(sinfo -h -o '%c CPUs, partition %P'))" >&2
        exit 0
    fi
    sleep 1
done
die "the node did not become idle within 60 s: $(sinfo -h -o '%t %E' 2>&1 | head -n 1)"
