#!/usr/bin/env bash
# Two "hosts" on this machine for benchmarks of worlds across hosts: network namespaces joined by a bridge, each with
# a folder the other cannot see, and the launcher Hydra runs instead of ssh — as tests/Trainer.Tests/Mpi/NamespaceHosts.cs
# builds them for the tests. Runs one command inside host 0 with the launch environment set, then removes everything.
#   sudo tools/bench/span_hosts.sh -- dotnet trainer.dll bench ... --mpi_hosts "$SPAN_HOSTS"
# In the command: $SPAN_HOSTS is "lsq-bench-0:2,lsq-bench-1:2" (SLOTS per host, default 2), $SPAN_DIR0 host 0's folder.
set -euo pipefail
[ "${1:-}" = -- ] && shift
slots=${SLOTS:-2}
tag=bench; bridge=lsqbr$tag; root=""
name() { echo "lsq-$tag-$1"; }
cleanup() {
  for i in 0 1; do ip netns del "$(name $i)" 2>/dev/null || true; ip link del "lsqv$tag$i" 2>/dev/null || true; done
  ip link del "$bridge" 2>/dev/null || true; [ -z "$root" ] || rm -rf "$root"
}
trap cleanup EXIT
cleanup; root=$(mktemp -d /tmp/lsq-$tag-XXXX)
ip link add "$bridge" type bridge; ip addr add 10.79.0.254/24 dev "$bridge"; ip link set "$bridge" up
for i in 0 1; do
  mkdir -p "$root/host$i"
  ip netns add "$(name $i)"
  ip link add "lsqv$tag$i" type veth peer name lsqeth0 netns "$(name $i)"
  ip link set "lsqv$tag$i" master "$bridge"; ip link set "lsqv$tag$i" up
  ip -n "$(name $i)" addr add "10.79.0.$((i + 1))/24" dev lsqeth0
  ip -n "$(name $i)" link set lsqeth0 up; ip -n "$(name $i)" link set lo up
done
launcher=$root/launcher.sh
cat > "$launcher" <<SH
#!/bin/sh
while [ "\${1#-}" != "\$1" ]; do shift; done
host=\$1; shift
case "\$host" in
  $(name 0)) exec ip netns exec "\$host" sh -c "mount -t tmpfs hidden '$root/host1' && cd '$root/host0' && exec \$*" ;;
  $(name 1)) exec ip netns exec "\$host" sh -c "mount -t tmpfs hidden '$root/host0' && cd '$root/host1' && exec \$*" ;;
esac
echo "launcher: unknown host \$host" >&2; exit 1
SH
chmod 700 "$launcher"
export SPAN_HOSTS="$(name 0):$slots,$(name 1):$slots" SPAN_DIR0=$root/host0
export LONGSEQ_MPI_LAUNCHER_EXEC=$launcher LONGSEQ_MPI_IFACE=lsqeth0 UCX_TLS=self,tcp TMPDIR=$root/host0
ip netns exec "$(name 0)" bash -c "$*"
