#!/usr/bin/env bash
# A throw-away single-node Slurm cluster for flexnet's Slurm tests (Debian/Ubuntu, root, no systemd).
#
#   bash scripts/slurm-local.sh start    install (apt-get) if needed, configure, start, wait for the node
#   bash scripts/slurm-local.sh status   which daemons run (by recorded PID) + sinfo; exit 1 if not usable
#   bash scripts/slurm-local.sh stop     cancel jobs, stop the daemons this script started (by PID)
#
# Daemons: munged (as user munge), mariadbd + slurmdbd (accounting, so `sacct` works: without it
# submitit cannot see that a job died and waits forever), slurmctld, slurmd. Starting twice is a
# no-op for daemons that are already up; stop only signals PIDs recorded by start, after checking
# the process name.
#
# Environment:
#   FLEXNET_SLURM_DIR=/tmp/flexnet-slurm   state, spool, logs and PID files
#   FLEXNET_SLURM_ACCOUNTING=1             0: no mariadb/slurmdbd (sacct will not work)
#   FLEXNET_SLURM_PARTITION=debug          name of the single (default) partition
#   FLEXNET_SLURM_FRESH=0                  1: wipe state first (job ids restart at 1)
#   FLEXNET_SLURM_WAIT_S=60                how long to wait for the node to become idle
#   FLEXNET_SLURM_FORCE=0                  1: overwrite an /etc/slurm/slurm.conf this script did not write
#   FLEXNET_SLURM_CRED_EXPIRE=20           credential lifetime (s); also the wait before a requeued job restarts
set -euo pipefail

DIR=${FLEXNET_SLURM_DIR:-/tmp/flexnet-slurm}
ACCOUNTING=${FLEXNET_SLURM_ACCOUNTING:-1}
PARTITION=${FLEXNET_SLURM_PARTITION:-debug}
FRESH=${FLEXNET_SLURM_FRESH:-0}
WAIT_S=${FLEXNET_SLURM_WAIT_S:-60}
FORCE=${FLEXNET_SLURM_FORCE:-0}
CRED_EXPIRE=${FLEXNET_SLURM_CRED_EXPIRE:-20}
RUN=$DIR/run LOG=$DIR/log STATE=$DIR/state SPOOL=$DIR/spool
CONF=/etc/slurm/slurm.conf DBD_CONF=/etc/slurm/slurmdbd.conf
MARK="# written by flexnet scripts/slurm-local.sh"
DB_PASS=flexnet-local-slurmdbd

say() { echo "[slurm-local $(date +%T)] $*"; }
die() { echo "slurm-local: $*" >&2; exit 1; }

# alive NAME: the PID recorded in $RUN/NAME.pid is a live process whose comm is COMM (2nd arg)
alive() {
  local f=$RUN/$1.pid pid
  [ -s "$f" ] || return 1
  pid=$(tr -dc 0-9 <"$f")
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$2" ]
}
pid_of() { tr -dc 0-9 <"$RUN/$1.pid"; }

# wait_for SECONDS CMD...: retry CMD every 0.1 s until it succeeds
wait_for() {
  local n=$(( $1 * 10 )); shift
  local i
  for (( i = 0; i < n; i++ )); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

node_name() { hostname -s; }
node_state() { sinfo -h -n "$(node_name)" -o %T 2>/dev/null | head -1; }
ctld_up() { scontrol ping 2>/dev/null | grep -q UP; }

install_packages() {
  local pkgs="slurmctld slurmd slurm-client munge" missing="" p
  [ "$ACCOUNTING" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
  for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  [ -z "$missing" ] && return 0
  command -v apt-get >/dev/null || die "packages missing ($missing) and no apt-get to install them"
  say "installing:$missing"
  mkdir -p "$DIR"
  export DEBIAN_FRONTEND=noninteractive
  # the packages' own service start is refused without an init system; we start daemons by hand
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; } >"$DIR/apt.log" 2>&1; then
    cat "$DIR/apt.log" >&2; die "apt-get install failed"
  fi
}

write_slurm_conf() {
  local host hw mem realmem acct tmp
  host=$(node_name)
  getent hosts "$host" >/dev/null || echo "127.0.0.1 $host" >>/etc/hosts
  # CPUs/sockets/cores/threads exactly as slurmd detects them, memory a little below the total:
  # a node that claims more than slurmd finds is drained ("Low RealMemory")
  hw=$(slurmd -C | head -1 | sed -e 's/^NodeName=[^ ]* //' -e 's/ *RealMemory=[0-9]*//')
  mem=$(free -m | awk '/^Mem:/{print $2}')
  realmem=$(( mem - (mem / 10 < 1024 ? mem / 10 : 1024) ))
  if [ "$ACCOUNTING" = 1 ]; then
    acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux"
  else
    acct="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
  fi
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF" && [ "$FORCE" != 1 ]; then
    die "$CONF exists and was not written by this script; set FLEXNET_SLURM_FORCE=1 to replace it"
  fi
  mkdir -p /etc/slurm
  tmp=$CONF.flexnet-new
  cat >"$tmp" <<EOF
$MARK (state in $DIR)
ClusterName=flexnet
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
# a requeued job may start again cred_expire+1 s after the requeue (Slurm's default: 120 s)
AuthInfo=cred_expire=$CRED_EXPIRE
MpiDefault=none
MailProg=/bin/true
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups: works inside containers
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
$acct
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a per-CPU default every job would claim the whole node's memory
DefMemPerCPU=1024
ReturnToService=2
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
MinJobAge=300
# the default batch_sched_delay makes every batch job wait ~3 s for the scheduler
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
NodeName=$host NodeAddr=127.0.0.1 $hw RealMemory=$realmem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  CONF_CHANGED=0
  cmp -s "$tmp" "$CONF" || CONF_CHANGED=1
  mv "$tmp" "$CONF"
}

start_munge() {
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
      || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  mkdir -p /run/munge
  chown munge:munge /run/munge
  chmod 0755 /run/munge
  if alive munged munged; then
    say "munged already running (pid $(pid_of munged))"
  else
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    runuser -u munge -- /usr/sbin/munged
    wait_for 5 test -s /run/munge/munged.pid || die "munged did not start"
    cp /run/munge/munged.pid "$RUN/munged.pid"
    say "munged started (pid $(pid_of munged))"
  fi
  munge_ok() { munge -n </dev/null | unmunge; }
  wait_for 5 munge_ok || die "munge credentials do not round-trip"
}

start_accounting() {
  mkdir -p /run/mysqld
  chown mysql:mysql /run/mysqld
  if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql >"$LOG/mariadb-install.log" 2>&1 || { cat "$LOG/mariadb-install.log" >&2; die "mariadb-install-db failed"; }
  fi
  if alive mariadb mariadbd; then
    say "mariadbd already running (pid $(pid_of mariadb))"
  else
    # runs as user mysql, so its own PID file lives in /run/mysqld; we copy it afterwards
    rm -f /run/mysqld/mysqld.pid
    setsid /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 --pid-file=/run/mysqld/mysqld.pid \
      --innodb-buffer-pool-size=64M </dev/null >"$LOG/mariadb.log" 2>&1 &
    wait_for 30 mariadb-admin ping || { cat "$LOG/mariadb.log" >&2; die "mariadbd did not come up"; }
    wait_for 5 test -s /run/mysqld/mysqld.pid
    cp /run/mysqld/mysqld.pid "$RUN/mariadb.pid"
    say "mariadbd started (pid $(pid_of mariadb))"
  fi
  # job ids restart at 1 after a fresh start: drop old records too, or `sacct -j N` is ambiguous
  if [ "$FRESH" = 1 ]; then mariadb -e "DROP DATABASE IF EXISTS slurm_acct_db;"; fi
  mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  (
    umask 077   # slurmdbd refuses a conf others can read (it holds the db password)
    cat >"$DBD_CONF" <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
  )
  chmod 600 "$DBD_CONF"
  if alive slurmdbd slurmdbd; then
    say "slurmdbd already running (pid $(pid_of slurmdbd))"
  else
    slurmdbd
    wait_for 30 sacctmgr -n -P show cluster || { tail -20 "$LOG/slurmdbd.log" >&2; die "slurmdbd did not answer"; }
    say "slurmdbd started (pid $(pid_of slurmdbd))"
  fi
}

start_slurm() {
  if [ "$CONF_CHANGED" = 1 ] && { alive slurmctld slurmctld || alive slurmd slurmd; }; then
    # some settings (AuthInfo, node lines) are read only at start-up: restart, jobs are kept in $STATE
    say "slurm.conf changed: restarting slurmctld and slurmd"
    stop_group slurmd:slurmd slurmctld:slurmctld
  fi
  if alive slurmctld slurmctld; then
    say "slurmctld already running (pid $(pid_of slurmctld))"
  else
    slurmctld
    wait_for 15 ctld_up || { tail -20 "$LOG/slurmctld.log" >&2; die "slurmctld did not come up"; }
    say "slurmctld started (pid $(pid_of slurmctld))"
  fi
  if alive slurmd slurmd; then
    say "slurmd already running (pid $(pid_of slurmd))"
  else
    slurmd
    wait_for 10 test -s "$RUN/slurmd.pid" || { tail -20 "$LOG/slurmd.log" >&2; die "slurmd did not start"; }
    say "slurmd started (pid $(pid_of slurmd))"
  fi
}

wait_idle() {
  local host st i
  host=$(node_name)
  for (( i = 0; i < WAIT_S * 5; i++ )); do
    st=$(node_state)
    case "$st" in
      idle|mixed|allocated|completing) say "node $host is $st"; return 0 ;;
      drain*|down*) scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.2
  done
  scontrol show node "$host" >&2 || true
  die "node $host is '$(node_state)' after ${WAIT_S}s; logs in $LOG"
}

cmd_start() {
  [ "$(id -u)" = 0 ] || die "start must run as root (it installs packages and starts daemons)"
  install_packages
  if [ "$FRESH" = 1 ]; then cmd_stop || true; rm -rf "$STATE" "$SPOOL" "$LOG"; fi
  mkdir -p "$RUN" "$LOG" "$STATE" "$SPOOL"
  write_slurm_conf
  start_munge
  if [ "$ACCOUNTING" = 1 ]; then start_accounting; fi
  start_slurm
  wait_idle
  sinfo
}

# stop_group NAME:COMM...: SIGTERM each recorded live PID, then wait (SIGKILL after 15 s)
stop_group() {
  local spec name comm pid pids="" i
  for spec in "$@"; do
    name=${spec%%:*} comm=${spec##*:}
    [ -e "$RUN/$name.pid" ] || continue
    if alive "$name" "$comm"; then
      pid=$(pid_of "$name")
      kill -TERM "$pid" 2>/dev/null && pids="$pids $pid:$comm"
    else
      say "$comm: not running (stale pid file)"
    fi
    rm -f "$RUN/$name.pid"
  done
  for spec in $pids; do
    pid=${spec%%:*} comm=${spec##*:}
    for (( i = 0; i < 150; i++ )); do [ -e "/proc/$pid" ] || break; sleep 0.1; done
    if [ -e "/proc/$pid" ]; then say "$comm ($pid) still running after 15 s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    say "stopped $comm (pid $pid)"
  done
}

cmd_stop() {
  [ -d "$RUN" ] || { say "nothing to stop ($RUN does not exist)"; return 0; }
  if alive slurmctld slurmctld && command -v squeue >/dev/null && ctld_up; then
    local ids
    ids=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
    if [ -n "${ids// /}" ]; then
      say "scancel $ids"
      scancel $ids 2>/dev/null || true
      wait_for 10 test -z "$(squeue -h 2>/dev/null)" || true
    fi
  fi
  # reverse start order; slurmctld flushes job records to slurmdbd before that goes
  stop_group slurmd:slurmd slurmctld:slurmctld
  stop_group slurmdbd:slurmdbd
  stop_group mariadb:mariadbd munged:munged
}

cmd_status() {
  local ok=0 spec
  for spec in munged:munged mariadb:mariadbd slurmdbd:slurmdbd slurmctld:slurmctld slurmd:slurmd; do
    if alive "${spec%%:*}" "${spec##*:}"; then
      echo "${spec##*:}: running (pid $(pid_of "${spec%%:*}"))"
    elif [ "${spec%%:*}" = mariadb ] || [ "${spec%%:*}" = slurmdbd ]; then
      [ "$ACCOUNTING" = 1 ] && ok=1
      echo "${spec##*:}: not running"
    else
      ok=1; echo "${spec##*:}: not running"
    fi
  done
  if command -v sinfo >/dev/null && ctld_up; then sinfo; echo "node: $(node_state)"; else ok=1; fi
  return $ok
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  restart) cmd_stop; cmd_start ;;
  *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
