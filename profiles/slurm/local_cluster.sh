#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for testing profiles/slurm for real.
#
#   profiles/slurm/local_cluster.sh up [--install]   write the config, start munged, slurmctld,
#                                                    slurmd; wait until `srun hostname` works
#   profiles/slurm/local_cluster.sh down             stop the three daemons
#   profiles/slurm/local_cluster.sh status           exit 0 when the node answers, 1 otherwise
#
# Needs root. Debian/Ubuntu: `--install` runs `apt-get install slurm-wlm munge` (no recommends);
# without it, nothing is installed and missing binaries are an error. Works without systemd (it
# starts the daemons itself) and without cgroups (proctrack/linuxproc, task/none). No accounting
# database: job state comes from slurmctld, which is why profiles/slurm says
# `slurm-status-command: squeue` and this cluster keeps finished jobs for MinJobAge=300 s.
#
# GPUs: when /dev/nvidia[0-9]* exist they are declared as GRES gpu with their device files.
# Otherwise LOCAL_SLURM_GPUS (default 1) *fake* GPUs are declared (device files that are copies of
# /dev/null under /run/recsae-fake-gpu), so that jobs asking for `--gpus=1` (the profile's
# `gpu: 1`) are scheduled on a CPU-only machine; the job then finds no CUDA device and torch runs
# on the CPU. LOCAL_SLURM_GPUS=0 declares none.
#
# Idempotent: `up` on a running, identically configured cluster only re-checks it; a changed
# config restarts the SLURM daemons. It refuses to overwrite a slurm.conf it did not write.
set -euo pipefail

CONF_DIR=${SLURM_CONF_DIR:-/etc/slurm}
CONF=$CONF_DIR/slurm.conf
GRES_CONF=$CONF_DIR/gres.conf
MARKER="# written by recsae profiles/slurm/local_cluster.sh"
LOG_DIR=/var/log/slurm
CTLD_LOG=$LOG_DIR/slurmctld.log
SLURMD_LOG=$LOG_DIR/slurmd.log
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid
MUNGE_LOG=/var/log/munge/munged.log
WAIT_S=${LOCAL_SLURM_WAIT_S:-60}
NODE=$(hostname -s)
FAKE_GPU_DIR=/run/recsae-fake-gpu

log() { printf '[local_cluster] %s\n' "$*" >&2; }

die() {
  log "ERROR: $*"
  for f in "$MUNGE_LOG" "$CTLD_LOG" "$SLURMD_LOG"; do
    if [[ -f $f ]]; then
      printf '\n----- last lines of %s -----\n' "$f" >&2
      tail -n 40 "$f" >&2
    fi
  done
  exit 1
}

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (it starts system daemons)"; }

alive() { # alive PIDFILE: the process named in PIDFILE is running
  [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_packages() {
  command -v apt-get >/dev/null || die "--install only knows apt-get (Debian/Ubuntu)"
  log "installing slurm-wlm and munge with apt-get"
  # Keep package scripts from starting daemons (no init system here; we start them ourselves).
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
  fi
  local rc=0
  {
    export DEBIAN_FRONTEND=noninteractive
    # `update` only when the package lists are missing or a first install attempt fails.
    if ! apt-get install -y -q --no-install-recommends slurm-wlm munge >/tmp/local_cluster_apt.log 2>&1
    then
      apt-get update -q >>/tmp/local_cluster_apt.log 2>&1 &&
        apt-get install -y -q --no-install-recommends slurm-wlm munge \
          >>/tmp/local_cluster_apt.log 2>&1
    fi
  } || rc=$?
  [[ $made_policy -eq 1 ]] && rm -f "$policy"
  if [[ $rc -ne 0 ]]; then
    tail -n 30 /tmp/local_cluster_apt.log >&2
    die "apt-get install failed (full log: /tmp/local_cluster_apt.log)"
  fi
}

check_binaries() {
  local b missing=()
  for b in munged munge unmunge slurmctld slurmd sinfo srun sbatch squeue scontrol; do
    command -v "$b" >/dev/null || missing+=("$b")
  done
  if ((${#missing[@]})); then
    die "missing: ${missing[*]}; run '$0 up --install' (apt-get install slurm-wlm munge)"
  fi
}

# ---------------------------------------------------------------------------- munge
start_munge() {
  id munge >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin munge
  mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null; then
      mungekey --create --keyfile=/etc/munge/munge.key
    elif [[ -x /usr/sbin/create-munge-key ]]; then
      /usr/sbin/create-munge-key -f
    else
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
  fi
  chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
  chmod 0700 /etc/munge /var/lib/munge /var/log/munge
  chmod 0400 /etc/munge/munge.key
  chmod 0755 /run/munge
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged already running"
    return
  fi
  log "starting munged"
  runuser -u munge -- munged --pid-file="$MUNGE_PID" --log-file="$MUNGE_LOG" ||
    die "munged did not start"
  local i
  for ((i = 0; i < 20; i++)); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return
    sleep 0.5
  done
  die "munge credentials do not round-trip (munge -n | unmunge)"
}

# ---------------------------------------------------------------------------- config
CONFIG_CHANGED=0
write_configs() { # sets CONFIG_CHANGED=1 when slurm.conf or gres.conf changed
  local cpus mem_mb real_mb gpus gres_line="" gres_types="" tmp
  cpus=$(nproc)
  mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
  # "a bit under" the machine's memory: 10% (at most 2 GiB) kept back, so slurmd never sees a
  # node with less memory than configured (which would drain it).
  real_mb=$((mem_mb - (mem_mb / 10 < 2048 ? mem_mb / 10 : 2048)))
  local devices=(/dev/nvidia[0-9]*)
  tmp=$(mktemp)
  if [[ -e ${devices[0]} ]]; then
    gpus=${#devices[@]}
    printf '%s\nAutoDetect=off\nName=gpu File=/dev/nvidia[0-%d]\n' "$MARKER" $((gpus - 1)) >"$tmp"
  else
    # SLURM drops file-less GPUs, so each fake GPU is a character device that is /dev/null.
    gpus=${LOCAL_SLURM_GPUS:-1}
    local i
    mkdir -p "$FAKE_GPU_DIR"
    for ((i = 0; i < gpus; i++)); do
      [[ -c $FAKE_GPU_DIR/gpu$i ]] || mknod "$FAKE_GPU_DIR/gpu$i" c 1 3 ||
        die "cannot create fake GPU device $FAKE_GPU_DIR/gpu$i (mknod)"
    done
    printf '%s\nAutoDetect=off\nName=gpu File=%s/gpu[0-%d]\n' "$MARKER" "$FAKE_GPU_DIR" \
      $((gpus - 1)) >"$tmp"
  fi
  mkdir -p "$CONF_DIR"
  if ((gpus > 0)); then
    gres_types="GresTypes=gpu"
    gres_line="Gres=gpu:$gpus"
    if ! cmp -s "$tmp" "$GRES_CONF"; then
      [[ -e $GRES_CONF ]] && ! grep -qF "$MARKER" "$GRES_CONF" &&
        die "$GRES_CONF exists and was not written by this script; move it away first"
      mv "$tmp" "$GRES_CONF" && CONFIG_CHANGED=1
    fi
  elif [[ -e $GRES_CONF ]] && grep -qF "$MARKER" "$GRES_CONF"; then
    rm -f "$GRES_CONF" && CONFIG_CHANGED=1
  fi
  rm -f "$tmp"

  tmp=$(mktemp)
  cat >"$tmp" <<EOF
$MARKER
# One node ($NODE), one partition (debug), no accounting, no cgroups.
ClusterName=recsae-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=1000
# Finished jobs stay visible to squeue for 5 minutes (the snakemake plugin polls squeue).
MinJobAge=300
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$CTLD_LOG
SlurmdLogFile=$SLURMD_LOG
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldTimeout=30
SlurmdTimeout=60
$gres_types
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mb $gres_line State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  if ! cmp -s "$tmp" "$CONF"; then
    [[ -e $CONF ]] && ! grep -qF "$MARKER" "$CONF" &&
      die "$CONF exists and was not written by this script; move it away first"
    mv "$tmp" "$CONF" && chmod 0644 "$CONF" && CONFIG_CHANGED=1
  fi
  rm -f "$tmp"
}

# ---------------------------------------------------------------------------- slurm
stop_slurm() {
  local f i pid
  for f in "$SLURMD_PID" "$CTLD_PID"; do
    if alive "$f"; then
      pid=$(cat "$f")
      kill "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$f"
  done
}

node_state() { sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n1; }

start_slurm() {
  mkdir -p /var/spool/slurmd /var/spool/slurmctld "$LOG_DIR"
  if ! alive "$CTLD_PID"; then
    log "starting slurmctld"
    slurmctld || die "slurmctld did not start"
  fi
  if ! alive "$SLURMD_PID"; then
    log "starting slurmd"
    slurmd -N "$NODE" || die "slurmd did not start"
  fi
  local i state="" resumed=0
  for ((i = 0; i < WAIT_S * 2; i++)); do
    state=$(node_state)
    case $state in
      idle | mixed | allocated | completing) break ;;
      inval*) break ;; # slurmd's hardware disagrees with slurm.conf: no point in waiting
      drain* | down* | fail*)
        # a node drained by an earlier, different config: put it back into service once
        if ((!resumed)) && alive "$SLURMD_PID"; then
          scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
          resumed=1
        fi ;;
    esac
    sleep 0.5
  done
  case $state in
    idle | mixed | allocated | completing) ;;
    *) scontrol show node "$NODE" >&2 || true
       die "node $NODE is '${state:-not listed}' after ${WAIT_S}s, not idle" ;;
  esac
  local out
  out=$(timeout 60 srun -N1 -n1 --mem=100 -t 1 hostname 2>&1) || die "srun hostname failed: $out"
  log "node $NODE is $state; srun ran on: $out"
}

cmd_up() {
  need_root
  local do_install=0 arg
  for arg in "$@"; do
    case $arg in
      --install) do_install=1 ;;
      *) die "unknown option for up: $arg" ;;
    esac
  done
  if ((do_install)) && ! command -v slurmctld >/dev/null; then install_packages; fi
  check_binaries
  start_munge
  write_configs
  if ((CONFIG_CHANGED)); then
    log "configuration written to $CONF"
    stop_slurm # a changed config needs fresh daemons
  fi
  start_slurm
  sinfo
}

cmd_down() {
  need_root
  stop_slurm
  if alive "$MUNGE_PID"; then
    kill "$(cat "$MUNGE_PID")" 2>/dev/null || true # munged removes its own pid file
  fi
  log "stopped"
}

cmd_status() {
  local f
  for f in "$MUNGE_PID" "$CTLD_PID" "$SLURMD_PID"; do
    if alive "$f"; then echo "$(basename "$f" .pid): running (pid $(cat "$f"))"
    else echo "$(basename "$f" .pid): not running"; fi
  done
  command -v sinfo >/dev/null || exit 1
  sinfo 2>&1 || exit 1
  case $(node_state) in idle | mixed | allocated | completing) exit 0 ;; *) exit 1 ;; esac
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 up [--install] | down | status" >&2; exit 2 ;;
esac
