#!/usr/bin/env bash
# Start a single-node Slurm cluster on loopback for the remote-executor
# tests and for trying the `slurm` executor by hand: munge, slurmctld and
# slurmd on this machine, one partition `gpu` with one fake GPU
# (`gres.conf` points it at /dev/null; without a `File` the node goes
# INVAL). Needs root and Debian's `slurm-wlm` and `munge` packages
# (`apt-get install slurm-wlm munge`). Idempotent: a running cluster is
# left alone.
#
# Settings the `slurm` executor relies on (see docs/executors.md):
# - MinJobAge: how long a finished job stays visible to squeue/scontrol.
#   Without accounting (no slurmdbd, as here) the result file in the lake
#   is what tells a finished job apart from one Slurm never knew.
# - KillWait: seconds between SIGTERM and SIGKILL on scancel; the worker
#   handles SIGTERM as an interruption.
set -euo pipefail

if scontrol ping 2>/dev/null | grep -q UP && sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mixed|alloc'; then
  echo "slurm: already running"
  exit 0
fi

host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))

install -d -o root -m 0755 /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

cat > /etc/slurm/slurm.conf <<CONF
ClusterName=restock
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
ReturnToService=2
MinJobAge=300
KillWait=5
SchedulerParameters=sched_interval=1,bf_interval=1
MessageTimeout=10
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem_mb} Gres=gpu:1 State=UNKNOWN
PartitionName=gpu Nodes=${host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
cat > /etc/slurm/gres.conf <<CONF
NodeName=${host} Name=gpu File=/dev/null
CONF

pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd

for _ in $(seq 1 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "slurm: up ($(sinfo -h -o '%P %T %G'))"
    exit 0
  fi
  sleep 0.5
done
echo "slurm: node did not come up; last log lines:" >&2
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
sinfo >&2 || true
exit 1
