#!/usr/bin/env bash
# A one-node SLURM on this machine, for the tests marked `slurm` (CI: .ci/run) and for trying the SLURM
# launcher without a cluster:   scripts/local_slurm.sh start | stop | status
#
# start   installs Debian's slurm-wlm and munge with apt-get when they are missing (root; 20-40 s),
#         writes /etc/slurm/slurm.conf (the default path, so sbatch/srun/squeue/scontrol find it from any
#         shell or test subprocess), starts munged, slurmctld and slurmd as daemons and waits until
#         `sinfo` shows the node idle. Already up: does nothing and says so.
# stop    cancels every job, then stops the daemons this script started.
# status  one line: up (exit 0) or down (exit 1).
#
# The cluster: one node (this host, `hostname -s`, at 127.0.0.1) with its CPU count (`nproc`) and memory,
# one default partition `local`; CPUs are the consumable resource (select/cons_tres, CR_CPU), so two 1-CPU
# jobs run at once on 2 cores. No cgroups (proctrack/linuxproc, task/none): it runs in containers.
# JobRequeue=1 lets `scontrol requeue` requeue batch jobs; a requeued job waits cred_expire (10 s here, not
# SLURM's default 120 s) before it starts again. Job ids keep counting across restarts (state is
# kept in $STATE_DIR), so a job id never names two different runs.
#
# No accounting: AccountingStorageType=accounting_storage/none, no slurmdbd, so `sacct` answers
# "Slurm accounting storage is disabled". Deliberately: a run's own records (its run directory's
# status.json and the job ids the study records) are the truth about its state, and the scheduler is
# asked only what is queued or running (`squeue`). A finished job leaves squeue after MinJobAge seconds.
#
# Signals as on a real cluster: `scancel --signal=USR1 ID` reaches the job's steps (what srun started),
# not its batch shell; `--batch` signals only the batch shell, `--full` both.
#
# Logs: $LOG_DIR (slurmctld.log, slurmd.log, apt.log); munged logs to /var/log/munge/munged.log.
set -euo pipefail

LOG_DIR=/var/log/slurm-local
STATE_DIR=/var/lib/slurm-local
CONF=/etc/slurm/slurm.conf
MARK="# written by scripts/local_slurm.sh"
START_TIMEOUT_S=60
NODE=$(hostname -s)

say() { echo "local SLURM: $*"; }
die() { echo "local SLURM: error: $*" >&2; exit 1; }

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

node_state() { timeout 5 sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1; }

is_up() {
  alive "$STATE_DIR/slurmctld.pid" && alive "$STATE_DIR/slurmd.pid" || return 1
  case $(node_state) in idle | mixed | allocated | completing) return 0 ;; *) return 1 ;; esac  # "idle*": not responding
}

describe() {
  local cpus mem
  read -r cpus mem < <(timeout 5 sinfo -h -n "$NODE" -o '%c %m' | head -n1)
  echo "node $NODE ($cpus CPUs, $mem MB, $(node_state)), partition local; logs in $LOG_DIR"
}

install_packages() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null && command -v munged >/dev/null && return 0
  [[ $(id -u) == 0 ]] || die "slurm-wlm and munge are not installed, and installing them needs root"
  say "installing slurm-wlm and munge with apt-get (log: $LOG_DIR/apt.log) ..."
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-cache policy slurm-wlm 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    apt-get update -qq >>"$LOG_DIR/apt.log" 2>&1 || die "apt-get update failed; see $LOG_DIR/apt.log"
  fi
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >>"$LOG_DIR/apt.log" 2>&1 \
    || die "apt-get install slurm-wlm munge failed; see $LOG_DIR/apt.log"
}

write_conf() {
  if [[ -f $CONF ]] && ! head -n1 "$CONF" | grep -qF "$MARK"; then
    die "$CONF exists and was not written by this script; not overwriting it (move it away to use a local SLURM)"
  fi
  local mem_mb
  mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
  mkdir -p "$(dirname "$CONF")" "$STATE_DIR/ctld" "$STATE_DIR/d"
  cat >"$CONF" <<EOF
$MARK (see its header); rewritten by every start.
ClusterName=local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
CredType=cred/munge
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
JobRequeue=1
ReturnToService=2
SlurmdParameters=config_overrides
KillWait=2
MinJobAge=10
InactiveLimit=0
MessageTimeout=10
SlurmdTimeout=300
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/d
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
  if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --force >/dev/null
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge && chown munge:munge /run/munge
  runuser -u munge -- /usr/sbin/munged || die "munged did not start; see /var/log/munge/munged.log"
  touch "$STATE_DIR/munged.ours"
}

start() {
  mkdir -p "$LOG_DIR" "$STATE_DIR"
  if command -v sinfo >/dev/null && is_up; then
    say "already up: $(describe)"
    return 0
  fi
  local t0=$SECONDS
  install_packages
  alive "$STATE_DIR/slurmctld.pid" && alive "$STATE_DIR/slurmd.pid" || write_conf
  start_munge
  alive "$STATE_DIR/slurmctld.pid" || slurmctld || die "slurmctld did not start; see $LOG_DIR/slurmctld.log"
  alive "$STATE_DIR/slurmd.pid" || slurmd || die "slurmd did not start; see $LOG_DIR/slurmd.log"
  case $(node_state || true) in drain* | down* | fail*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;; esac
  local deadline=$((SECONDS + START_TIMEOUT_S))
  until is_up; do
    ((SECONDS < deadline)) || die "node $NODE not idle after ${START_TIMEOUT_S} s (state: $(node_state || true)); see $LOG_DIR/slurmctld.log and $LOG_DIR/slurmd.log"
    sleep 0.5
  done
  say "up in $((SECONDS - t0)) s: $(describe)"
}

stop_daemon() {  # pid file, name
  alive "$1" || return 0
  local pid
  pid=$(cat "$1")
  kill "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  die "$2 (pid $pid) did not stop within 10 s"
}

stop() {
  if alive "$STATE_DIR/slurmctld.pid"; then
    local jobs
    jobs=$(timeout 5 squeue -h -o %i 2>/dev/null || true)
    [[ -z $jobs ]] || { scancel $jobs 2>/dev/null || true; sleep 3; }  # KillWait=2: SIGTERM, then SIGKILL
  fi
  stop_daemon "$STATE_DIR/slurmd.pid" slurmd
  stop_daemon "$STATE_DIR/slurmctld.pid" slurmctld
  if [[ -f $STATE_DIR/munged.ours ]]; then
    stop_daemon /run/munge/munged.pid munged
    rm -f "$STATE_DIR/munged.ours"
  fi
  say "stopped"
}

status() {
  if command -v sinfo >/dev/null && is_up; then say "up: $(describe)"; return 0; fi
  local state
  state=$(node_state || true)
  say "down${state:+ (node $NODE: $state)}"
  return 1
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
