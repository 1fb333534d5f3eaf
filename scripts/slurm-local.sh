#!/usr/bin/env bash
# Start a real single-node SLURM cluster on this machine (munged, slurmctld, slurmd), for trying
# `bench run --engine submitit` and for the tests marked `slurm`. Debian/Ubuntu, run as root.
#
#   scripts/slurm-local.sh           # install slurm-wlm + munge if missing, configure, start, wait
#   scripts/slurm-local.sh --stop    # stop the daemons this script started
#
# Idempotent: a second call with the cluster up only checks that the node answers. The node is
# described with this host's real CPUs and memory (`slurmd -C`); one partition, `local`, is the
# default. Accounting is off; processes are tracked without cgroups, so it works in containers.
set -euo pipefail

SLURM_ETC=${SLURM_ETC:-/etc/slurm}
STATE=${SLURM_STATE:-/var/spool/slurm-local}
LOGS=${SLURM_LOGS:-/var/log/slurm-local}
WAIT_S=${SLURM_WAIT_S:-60}

die() { echo "slurm-local: $*" >&2; exit 1; }
say() { echo "slurm-local: $*"; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts system daemons)"

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if [ "${1:-}" = "--stop" ]; then
  for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" /run/munge/munged.pid; do
    if pid_alive "$pidfile"; then kill "$(cat "$pidfile")"; say "stopped $(basename "$pidfile" .pid)"; fi
  done
  exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  say "installing slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q slurm-wlm munge >/dev/null
fi

host=$(hostname -s)
mkdir -p "$SLURM_ETC" "$STATE/ctld" "$STATE/d" "$LOGS"

# --- munge: the key comes with the Debian package; create one if it is missing
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 status=none
  chown munge:munge /etc/munge/munge.key 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown -R munge:munge /run/munge /var/lib/munge /var/log/munge /etc/munge 2>/dev/null || true
if ! pid_alive /run/munge/munged.pid; then
  say "starting munged"
  if id munge >/dev/null 2>&1; then runuser -u munge -- munged; else munged --force; fi
fi

# --- slurm.conf for this host (rewritten only when it changes)
node=$(slurmd -C | head -n 1)
conf=$(cat <<EOF
# Written by scripts/slurm-local.sh: a single-node cluster for trying bench's SLURM engine.
ClusterName=bench-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=2
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
$node State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
if [ ! -f "$SLURM_ETC/slurm.conf" ] || [ "$(cat "$SLURM_ETC/slurm.conf")" != "$conf" ]; then
  printf '%s\n' "$conf" > "$SLURM_ETC/slurm.conf"
  say "wrote $SLURM_ETC/slurm.conf ($node)"
  restart=1
else
  restart=0
fi
if [ "$restart" = 1 ]; then
  for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid"; do
    if pid_alive "$pidfile"; then kill "$(cat "$pidfile")"; sleep 1; fi
  done
fi
if ! pid_alive "$STATE/slurmctld.pid"; then say "starting slurmctld"; slurmctld; fi
if ! pid_alive "$STATE/slurmd.pid"; then say "starting slurmd"; slurmd; fi

# --- wait until the node is idle (or mixed/allocated: already running jobs)
for _ in $(seq "$WAIT_S"); do
  state=$(sinfo -h -N -n "$host" -o '%T' 2>/dev/null | head -n 1 || true)
  case "$state" in
    idle|mixed|allocated|completing) say "node $host is $state; partition local is up"; exit 0 ;;
    down*|drain*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
  esac
  sleep 1
done
die "node $host did not become idle within ${WAIT_S}s (state: ${state:-none}); logs in $LOGS"
