#!/usr/bin/env bash
# Starts a real, throw-away Slurm cluster (munge, slurmctld, slurmd), runs one command against it, and
# removes everything when the command ends, fails or is interrupted.
#
#   build/slurm-cluster.sh [--cpus N] -- COMMAND [ARGS...]
#       one node named localhost (127.0.0.1) with N CPUs (default: the cores here); needs no root
#   build/emulate-cluster.sh --slurm --nodes G --ranks-per-node M [--inter-bandwidth R] -- COMMAND [ARGS...]
#       G nodes node0..node(G-1), one slurmd in each emulated node's network namespace, slurmctld on node0;
#       this host joins the emulated network as the login node (198.18.X.254, a /24 of its own); needs root
#
# COMMAND runs on this host with SLURM_CONF pointing at the cluster's configuration, so sbatch, srun,
# squeue, scontrol and scancel (Debian: slurm-client) talk to it; so does anything COMMAND starts, e.g.
# `toolkit paro train --launcher slurm`. Every file lives in one temporary folder: munge's key and socket,
# the daemons' state, spool, pid and log files. Debian/Ubuntu: apt-get install slurmctld slurmd slurm-client munge.
# Internal, used by emulate-cluster.sh: --namespaces PREFIX --nodes G.
set -euo pipefail

cpus="" prefix="" nodes=1 subnet=198.18.0
usage() { sed -n '2,16p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --cpus) cpus=$2; shift 2 ;;
    --namespaces) prefix=$2; shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    --subnet) subnet=$2; shift 2 ;;
    --) shift; break ;;
    *) usage ;;
  esac
done
[ $# -gt 0 ] || usage
for tool in munged slurmctld slurmd sbatch scontrol; do
  command -v "$tool" >/dev/null || PATH="$PATH:/usr/sbin"
  command -v "$tool" >/dev/null || {
    echo "slurm-cluster: '$tool' is missing (Debian/Ubuntu: apt-get install slurmctld slurmd slurm-client munge)." >&2
    exit 2
  }
done
[ -n "$cpus" ] || cpus=$(nproc)
[[ "$cpus" =~ ^[0-9]+$ && "$cpus" -ge 1 ]] ||
  { echo "slurm-cluster: --cpus must be a positive integer (got $cpus)" >&2; exit 2; }

dir=$(mktemp -d /tmp/toolkit-slurm.XXXXXX)
chmod 755 "$dir"
pids=()
command_pid=""
ours=0   # set once SLURM_CONF points at this cluster: never scancel on a cluster the caller's environment named
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  [ -n "$command_pid" ] && kill "$command_pid" 2>/dev/null || true
  if [ $ours -eq 1 ]; then
    # Cancel what is left and let slurmd end its steps before the daemons go (else their tasks outlive the cluster).
    timeout 10 scancel --quiet --full --user "$(id -un)" 2>/dev/null || true
    for _ in $(seq 40); do [ -z "$(timeout 5 squeue -h 2>/dev/null || true)" ] && break; sleep 0.5; done
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for f in "$dir"/*.pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true; done
  if [ $status -ne 0 ] && [ -n "${TOOLKIT_SLURM_KEEP_LOGS:-}" ]; then
    cp "$dir"/*.log "$TOOLKIT_SLURM_KEEP_LOGS"/ 2>/dev/null || true
  fi
  rm -rf "$dir"
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

user=$(id -un)
# munge: its own key and socket, so it neither needs nor disturbs a system munged.
mkdir -m 700 "$dir/munge"
head -c 1024 /dev/urandom > "$dir/munge/munge.key"
chmod 400 "$dir/munge/munge.key"
munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.sock" --pid-file="$dir/munge/munged.pid" \
  --log-file="$dir/munged.log" --seed-file="$dir/munge/seed" --num-threads=4
for _ in $(seq 50); do [ -S "$dir/munge/munge.sock" ] && break; sleep 0.1; done
[ -S "$dir/munge/munge.sock" ] ||
  { echo "slurm-cluster: munged did not start:" >&2; cat "$dir/munged.log" >&2; exit 1; }
chmod 755 "$dir/munge"
pids+=("$(cat "$dir/munge/munged.pid")")

if [ -n "$prefix" ]; then
  controller="node0($subnet.1)"
  node_lines=$(for ((i = 0; i < nodes; i++)); do
    echo "NodeName=node$i NodeAddr=$subnet.$((i + 1)) CPUs=$cpus RealMemory=1024 State=UNKNOWN"
  done)
else
  controller="localhost(127.0.0.1)"
  node_lines="NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1024 State=UNKNOWN"
fi
mkdir -p "$dir/state" "$dir/spool"
task_prolog=""
if [ -n "$prefix" ]; then
  # Tasks get the submitter's environment, not the node's: what the emulated nodes need (MPICH's UCX over the node's
  # eth0, no MPI_Finalize, see emulate-cluster.sh) is set by a task prolog, whose "export" lines Slurm applies to
  # each task.
  task_prolog="$dir/task-prolog.sh"
  {
    echo '#!/bin/sh'
    for v in UCX_NET_DEVICES UCX_TLS UCX_WARN_UNUSED_ENV_VARS TOOLKIT_MPI_SKIP_FINALIZE TOOLKIT_EMULATED; do
      [ -n "${!v:-}" ] && printf 'echo "export %s=%s"\n' "$v" "${!v}"
    done
  } > "$task_prolog"
  chmod 755 "$task_prolog"
fi
cat > "$dir/slurm.conf" <<CONF
ClusterName=toolkit
SlurmctldHost=$controller
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd-%n.log
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=pmi2
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=600
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
${task_prolog:+TaskProlog=$task_prolog}
$node_lines
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir/slurm.conf"
ours=1

if [ -n "$prefix" ]; then
  # Inside the emulated nodes: their namespace, their hostname, their boot id (see emulate-cluster.sh), and
  # a cgroup mount point (ip netns exec mounts a fresh /sys without one; slurmd's cgroup plugin needs it,
  # cgroup.conf lets it mount the v1 controllers there).
  printf 'CgroupPlugin=cgroup/v1\nCgroupAutomount=yes\n' > "$dir/cgroup.conf"
  for ((i = 0; i < nodes; i++)); do mkdir -p "$dir/spool/node$i"; done
  in_node() {
    local i=$1
    shift
    ip netns exec "${prefix}n$i" unshare --uts sh -c 'mount --bind "$0" /proc/sys/kernel/random/boot_id &&
      mount -t tmpfs cgroup /sys/fs/cgroup && hostname "$1" && shift && exec "$@"' \
      "/run/$prefix/${prefix}n$i/boot_id" "node$i" "$@"
  }
  in_node 0 slurmctld -D -f "$SLURM_CONF" >>"$dir/daemons.out" 2>&1 & pids+=($!)
  for ((i = 0; i < nodes; i++)); do
    in_node "$i" slurmd -D -N "node$i" -f "$SLURM_CONF" >>"$dir/daemons.out" 2>&1 & pids+=($!)
  done
else
  mkdir -p "$dir/spool/localhost"
  slurmctld -D -f "$SLURM_CONF" >>"$dir/daemons.out" 2>&1 & pids+=($!)
  slurmd -D -N localhost -f "$SLURM_CONF" >>"$dir/daemons.out" 2>&1 & pids+=($!)
fi

# Ready when every node is idle.
for _ in $(seq 150); do
  idle=$(sinfo -h -N -t idle -o '%N' 2>/dev/null | sort -u | wc -l || true)
  [ "$idle" -ge "$nodes" ] && break
  sleep 0.2
done
if [ "${idle:-0}" -lt "$nodes" ]; then
  echo "slurm-cluster: the nodes did not become idle; daemon logs follow" >&2
  tail -n 20 "$dir"/slurm*.log "$dir/daemons.out" >&2 || true
  exit 1
fi
echo "slurm-cluster: ready, $nodes node(s) x $cpus CPUs, SLURM_CONF=$SLURM_CONF" >&2

# In the background, so that INT/TERM reach the trap at once (bash runs traps only between foreground commands).
set +e
"$@" <&0 &   # (an explicit stdin: a background command would otherwise read /dev/null)
command_pid=$!
wait $command_pid
status=$?
set -e
exit $status
