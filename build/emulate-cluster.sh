#!/usr/bin/env bash
# Emulates a cluster of G "nodes" on this Linux machine and runs one MPI job across it.
#
#   build/emulate-cluster.sh --nodes G --ranks-per-node M [--nics-per-node K] [--inter-bandwidth 1gbit]
#                            [--inter-latency 0.2ms] -- PROGRAM [ARGS...]
#   build/emulate-cluster.sh --slurm --nodes G --ranks-per-node M [...] -- COMMAND [ARGS...]
#
# With --slurm, no MPI job is started: the nodes run a Slurm cluster instead (build/slurm-cluster.sh: one
# slurmd per node, slurmctld on node0, M CPUs per node), this host joins the emulated network as the
# login node (198.18.X.254, unshaped), and COMMAND runs here with SLURM_CONF set, e.g. an sbatch.
#
# Each node is a network namespace with its own hostname (UTS namespace), machine-id and /etc/hosts,
# joined by a veth pair to a bridge that lives in a namespace of its own and is connected to nothing
# else: addresses come from 198.18.0.0/15 (RFC 2544 benchmarking), there is no default route, so no
# traffic can leave. Each node's link is shaped with tc: the rate with a token bucket (tbf), the
# latency with netem when the kernel has it (sch_netem); without it the script says so and adds no
# latency. Ranks of one node run in the same namespace and share memory; MPICH's mpiexec runs inside
# node 0 and starts the other nodes' proxies through a launcher that enters their namespaces.
# With --nics-per-node K (multi-rail, as in clusters with one NIC per GPU), each node has K shaped links
# eth0..eth(K-1), link r on subnet 198.18.r.0/24 of switch r, and the rank with local index i uses
# link i mod K for inter-node traffic (UCX_NET_DEVICES set per rank from hydra's MPI_LOCALRANKID). Rails are
# rail-optimised: link r of every node hangs on switch r, and a packet leaves by the link of its destination's
# subnet, so ranks of equal local index talk over their own rail.
# Needs root. Everything it creates is removed when it ends, fails or is interrupted.
set -euo pipefail

nodes=2 per_node=2 nics=1 rate="" delay="" verbose=0 slurm=0
usage() { sed -n '2,23p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes=$2; shift 2 ;;
    --ranks-per-node) per_node=$2; shift 2 ;;
    --nics-per-node) nics=$2; shift 2 ;;
    --inter-bandwidth) rate=$2; shift 2 ;;
    --inter-latency) delay=$2; shift 2 ;;
    --verbose) verbose=1; shift ;;
    --slurm) slurm=1; shift ;;
    --) shift; break ;;
    *) usage ;;
  esac
done
[ $# -gt 0 ] || usage
fail() { echo "emulate-cluster: $*" >&2; exit 2; }
[[ "$nodes" =~ ^[0-9]+$ && "$nodes" -ge 1 && "$nodes" -le 200 ]] || fail "--nodes must be 1..200 (got $nodes)"
[[ "$per_node" =~ ^[0-9]+$ && "$per_node" -ge 1 ]] ||
  fail "--ranks-per-node must be a positive integer (got $per_node)"
[[ "$nics" =~ ^[0-9]+$ && "$nics" -ge 1 && "$nics" -le "$per_node" && "$nics" -le 100 ]] ||
  fail "--nics-per-node must be 1..ranks-per-node (got $nics)"
[ "$slurm" -eq 0 ] || [ "$nics" -eq 1 ] ||
  fail "--nics-per-node above 1 is for MPI jobs; a Slurm cluster has one link per node"
if [ "$(id -u)" -ne 0 ]; then
  echo "emulate-cluster: needs root to create network namespaces and shape links with tc" \
    "(run it with sudo, or as root in a container or VM)." >&2
  exit 77
fi
for tool in ip tc unshare mpiexec.mpich; do
  command -v "$tool" >/dev/null || fail "'$tool' is missing (Debian/Ubuntu: apt-get install iproute2 util-linux mpich)."
done

prefix="tk$$"
switch="${prefix}sw"
created=()
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for ns in "${created[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "/etc/netns/$ns"
  done
  rm -f "/tmp/${prefix}-launch" "/tmp/${prefix}-rail"
  rm -rf "/run/$prefix"
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ $verbose -eq 1 ] && echo "emulate-cluster: namespaces $prefix" >&2
ip netns add "$switch"; created+=("$switch")
# One switch per rail (rail-optimised), br0 for one NIC.
for ((r = 0; r < nics; r++)); do
  ip netns exec "$switch" ip link add "br$r" type bridge
  ip netns exec "$switch" ip link set "br$r" up
done

netem=0
if ip netns exec "$switch" tc qdisc add dev lo root netem delay 1ms 2>/dev/null; then
  netem=1
  ip netns exec "$switch" tc qdisc del dev lo root
fi
if [ -n "$delay" ] && [ $netem -eq 0 ]; then
  echo "emulate-cluster: this kernel has no netem (sch_netem), so --inter-latency $delay is NOT emulated;" \
    "links are only rate-limited." >&2
fi

# The nodes' subnet. MPI-only clusters are connected to nothing, so all use 198.18.0.0/24; a Slurm cluster's login
# node is this host, so each takes a /24 no other cluster on this host has routed.
subnet=198.18.0
if [ $slurm -eq 1 ]; then
  for ((k = 0; k < 250; k++)); do
    candidate="198.18.$(( ($$ + k) % 250 + 1 ))"
    ip route show "$candidate.0/24" | grep -q . || { subnet=$candidate; break; }
  done
fi
hosts="127.0.0.1 localhost"
for ((i = 0; i < nodes; i++)); do hosts+=$'\n'"$subnet.$((i + 1)) node$i"; done
# The token bucket's burst: what a link passes at once, above its rate, after it has been idle. A real NIC has
# none, and a fixed burst favours short transfers that follow compute (a 256 KB burst is a third of a 0.8 MB
# transfer); so 4 ms of the rate, at least 32 KB (tbf needs some to reach its rate), at most 256 KB.
burst=256kb
if [ -n "$rate" ]; then
  # tc's spelling, as the toolkit accepts it: a number (decimals allowed), then bit, kbit, mbit or gbit, any case.
  bytes=$(printf '%s' "$rate" | tr -d ' ' | tr 'A-Z' 'a-z' | awk '
    match($0, /^[0-9]*\.?[0-9]+(e[-+]?[0-9]+)?/) {
      value = substr($0, 1, RLENGTH) + 0; unit = substr($0, RLENGTH + 1)
      scale = unit == "bit" ? 1 : unit == "kbit" ? 1e3 : unit == "mbit" ? 1e6 : unit == "gbit" ? 1e9 : 0
      if (scale == 0) exit
      b = value * scale / 8 * 0.004; if (b < 32768) b = 32768; if (b > 262144) b = 262144
      printf "%d", b
    }')
  if [ -n "$bytes" ]; then burst="${bytes}b"
  else echo "emulate-cluster: could not read the rate '$rate' to size the token bucket's burst; using 256kb" >&2
  fi
fi
for ((i = 0; i < nodes; i++)); do
  ns="${prefix}n$i"
  ip netns add "$ns"; created+=("$ns")
  mkdir -p "/etc/netns/$ns"
  printf '%s\n' "$hosts" > "/etc/netns/$ns/hosts"                  # ip netns exec bind-mounts these over /etc
  # Distinct machine identities per node: UCX (MPICH's transport here) decides that two processes may use
  # shared memory when their boot ids match, so each node gets its own, bind-mounted where the kernel's is.
  printf '%032x\n' "$((0x7e57 + i))" > "/etc/netns/$ns/machine-id"
  mkdir -p "/run/$prefix/$ns"
  printf '7e57b007-0000-4000-8000-%012x\n' "$i" > "/run/$prefix/$ns/boot_id"
  ip netns exec "$ns" ip link set lo up
  for ((r = 0; r < nics; r++)); do
    # Rail 0 keeps the cluster's subnet (and the names in /etc/hosts); rail r > 0 is 198.18.r.0/24.
    net=$subnet; [ $r -eq 0 ] || net="198.18.$r"
    # Both ends are made in their namespaces: no name in this host's namespace, so clusters never collide.
    switch_if="n${i}r$r"
    ip link add "eth$r" netns "$ns" type veth peer name "$switch_if" netns "$switch"
    ip netns exec "$switch" ip link set "$switch_if" master "br$r" up
    ip netns exec "$ns" ip addr add "$net.$((i + 1))/24" dev "eth$r"
    ip netns exec "$ns" ip link set "eth$r" up
    if [ -n "$delay" ] && [ $netem -eq 1 ]; then
      ip netns exec "$ns" tc qdisc add dev "eth$r" root handle 1: netem delay "$delay" ${rate:+rate "$rate"}
    elif [ -n "$rate" ]; then
      ip netns exec "$ns" tc qdisc add dev "eth$r" root tbf rate "$rate" burst "$burst" latency 400ms
      ip netns exec "$switch" tc qdisc add dev "$switch_if" root tbf rate "$rate" burst "$burst" latency 400ms
    fi
  done
done

# What every rank (and the run's records) learns about the emulation; UCX: TCP between nodes on eth0, shared memory
# inside.
export UCX_NET_DEVICES=eth0 UCX_TLS=tcp,self,sm UCX_WARN_UNUSED_ENV_VARS=n TOOLKIT_MPI_SKIP_FINALIZE=1
tbf_burst=$([ -n "$rate" ] && ! { [ -n "$delay" ] && [ $netem -eq 1 ]; } && echo $burst || echo none)
latency_emulated=$([ -n "$delay" ] && echo $netem || echo 0)
export TOOLKIT_EMULATED="nodes=$nodes ranks_per_node=$per_node nics_per_node=$nics rate=${rate:-none}"
TOOLKIT_EMULATED+=" tbf_burst=$tbf_burst latency=${delay:-none} latency_emulated=$latency_emulated"

if [ $slurm -eq 1 ]; then
  # This host is the login node: one unshaped veth into the bridge, deleted with the switch's namespace.
  ip link add "${prefix}h" type veth peer name "${prefix}hb"
  ip link set "${prefix}hb" netns "$switch"
  ip netns exec "$switch" ip link set "${prefix}hb" master br0 up
  ip addr add "$subnet.254/24" dev "${prefix}h"
  ip link set "${prefix}h" up
  TOOLKIT_EMULATED+=" launcher=slurm"
  [ $verbose -eq 1 ] && echo "emulate-cluster: $nodes nodes x $per_node CPUs under Slurm, rate ${rate:-unlimited}," \
    "latency ${delay:-none} (netem: $netem)" >&2
  set +e
  bash ${TOOLKIT_TRACE:+-x} "$(dirname "$0")/slurm-cluster.sh" --namespaces "$prefix" --subnet "$subnet" \
    --nodes "$nodes" --cpus "$per_node" -- "$@"
  status=$?
  set -e
  exit $status
fi

# Hydra's launcher, called like ssh: `launch [options] HOST COMMAND-LINE`; runs the command line (a
# shell string, as ssh would) inside HOST's namespace under HOST's hostname.
cat > "/tmp/${prefix}-launch" <<LAUNCH
#!/usr/bin/env bash
while [ "\${1#-}" != "\$1" ]; do shift; done
host=\$1; shift
ns="${prefix}n\${host#node}"
exec ip netns exec "\$ns" unshare --uts sh -c \\
  "mount --bind /run/${prefix}/\$ns/boot_id /proc/sys/kernel/random/boot_id && hostname \$host && exec \$*"
LAUNCH
chmod +x "/tmp/${prefix}-launch"

host_list=$(for ((i = 0; i < nodes; i++)); do printf 'node%d:%d,' "$i" "$per_node"; done)
host_list=${host_list%,}
[ $verbose -eq 1 ] && echo "emulate-cluster: $nodes nodes x $per_node ranks, rate ${rate:-unlimited}," \
  "latency ${delay:-none} (netem: $netem)" >&2
rail=()
if [ "$nics" -gt 1 ]; then
  # Each rank's rail: link (local rank mod K), chosen when hydra has set MPI_LOCALRANKID.
  cat > "/tmp/${prefix}-rail" <<RAIL
#!/bin/sh
export UCX_NET_DEVICES=eth\$(( \${MPI_LOCALRANKID:-0} % $nics ))
exec "\$@"
RAIL
  chmod +x "/tmp/${prefix}-rail"
  rail=("/tmp/${prefix}-rail")
fi
set +e
passed=UCX_NET_DEVICES,UCX_TLS,UCX_WARN_UNUSED_ENV_VARS,TOOLKIT_MPI_SKIP_FINALIZE,TOOLKIT_EMULATED
passed+=,TOOLKIT_CACHE_DIR,HOME,PATH,DOTNET_ROOT,TOOLKIT_RUNS_DIR
ip netns exec "${prefix}n0" unshare --uts \
  sh -c 'mount --bind "$0" /proc/sys/kernel/random/boot_id && hostname node0 && exec "$@"' \
  "/run/$prefix/${prefix}n0/boot_id" \
  mpiexec.mpich -launcher ssh -launcher-exec "/tmp/${prefix}-launch" -hosts "$host_list" -n $((nodes * per_node)) \
  -genvlist "$passed" "${rail[@]}" "$@"
status=$?
set -e
if [ $verbose -eq 1 ]; then
  for ((i = 0; i < nodes; i++)); do
    for ((r = 0; r < nics; r++)); do
      ip netns exec "${prefix}n$i" ip -s link show "eth$r" | sed -n '4p;6p' | sed "s/^/node$i eth$r /" >&2
    done
  done
fi
exit $status
