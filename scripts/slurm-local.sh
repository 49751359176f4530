#!/usr/bin/env bash
# A single-node Slurm cluster in a temporary directory, for the tests: Debian's
# slurmctld, slurmd, slurm-client and munge unpacked (not installed: nothing
# is started as a service), daemons on loopback ports, no systemd, accounting
# off. See ../shared/docs/slurm-single-node.md for where the settings come from.
#
#   scripts/slurm-local.sh install ROOT   download and unpack the packages into ROOT
#   scripts/slurm-local.sh start ROOT DIR  start munged, slurmctld and slurmd; writes
#                                          DIR/env (SLURM_CONF, PATH, LD_LIBRARY_PATH)
#   scripts/slurm-local.sh stop DIR        stop them
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge libmunge2 slurm-wlm-basic-plugins
  slurm-wlm-plugins libhwloc15 liblua5.1-0 libudev1 libxml2)

install() {
  local root=$1 pkg
  pkg=$(mktemp -d)
  apt-get update -qq
  (cd "$pkg" && apt-get download "${PACKAGES[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  mkdir -p "$root"
  for d in "$pkg"/*.deb; do dpkg -x "$d" "$root"; done
  rm -rf "$pkg"
  test -x "$root/usr/sbin/slurmctld-wlm"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

write_conf() {
  local root=$1 dir=$2 node=$3 cpus ctld_port d_port
  cpus=$(nproc)
  ctld_port=$(free_port)
  d_port=$(free_port)
  cat > "$dir/slurm.conf" <<EOF
ClusterName=probdrop
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.sock
CredType=cred/munge
PluginDir=$root/usr/lib/x86_64-linux-gnu/slurm-wlm
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
  local root=$1 dir=$2 node
  node=$(hostname -s)
  mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
  chmod 700 "$dir/munge"
  export LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu:$root/usr/lib/x86_64-linux-gnu/slurm-wlm${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  write_conf "$root" "$dir" "$node"
  "$root/usr/sbin/mungekey" -c -k "$dir/munge/munge.key" -f
  "$root/usr/sbin/munged" --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.sock" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/seed" --force
  "$root/usr/sbin/slurmctld-wlm" -f "$dir/slurm.conf"
  "$root/usr/sbin/slurmd-wlm" -f "$dir/slurm.conf" -d "$root/usr/sbin/slurmstepd-wlm"
  cat > "$dir/env" <<EOF
export SLURM_CONF=$dir/slurm.conf
export PATH=$root/usr/bin:\$PATH
export LD_LIBRARY_PATH=$LD_LIBRARY_PATH
EOF
  # shellcheck disable=SC1091
  source "$dir/env"
  for _ in $(seq 1 60); do
    if sinfo -h -o '%t' 2>/dev/null | grep -qx idle; then
      echo "slurm up: $(sinfo -h -o '%P %t %D %N')"
      return 0
    fi
    sleep 0.5
  done
  echo "slurm did not come up; logs in $dir/log" >&2
  tail -n 20 "$dir"/log/*.log >&2 || true
  return 1
}

stop() {
  local dir=$1 pidfile
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
    if [[ -f $pidfile ]]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
  done
}

case ${1:-} in
  install) install "$2" ;;
  start) start "$2" "$3" ;;
  stop) stop "$2" ;;
  *) echo "usage: $0 install ROOT | start ROOT DIR | stop DIR" >&2; exit 2 ;;
esac
