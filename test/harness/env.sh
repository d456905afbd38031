# shellcheck shell=bash
# Shared settings and helpers for the test harness scripts (install.sh,
# nats.sh, cassandra.sh). Sourced, never executed. Every variable can be set in
# the environment first, so several clones or agents can run their own servers
# side by side on one machine (different MACHINA_STATE and ports).

ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"

# Builds and jars are expensive (minutes) and identical for every clone, so they
# live outside the work tree and survive `git clean` and fresh clones.
MACHINA_CACHE="${MACHINA_CACHE:-$HOME/.cache/machina}"
# Everything belonging to one running instance: logs/, data/, run/ (configs and
# pid files). Deleting it resets the servers to empty.
MACHINA_STATE="${MACHINA_STATE:-$ROOT/.machina}"
# Both end up in generated configs and file:// URLs, which need absolute paths.
[[ $MACHINA_CACHE == /* ]] || MACHINA_CACHE="$PWD/$MACHINA_CACHE"
[[ $MACHINA_STATE == /* ]] || MACHINA_STATE="$PWD/$MACHINA_STATE"

MACHINA_NATS_PORT="${MACHINA_NATS_PORT:-4222}"
MACHINA_NATS_MONITOR_PORT="${MACHINA_NATS_MONITOR_PORT:-8222}"
MACHINA_CQL_PORT="${MACHINA_CQL_PORT:-9042}"
MACHINA_CASSANDRA_STORAGE_PORT="${MACHINA_CASSANDRA_STORAGE_PORT:-7000}"
MACHINA_CASSANDRA_JMX_PORT="${MACHINA_CASSANDRA_JMX_PORT:-7199}"
# The machine has 2 cores and is shared with other test servers; 1G is plenty
# for a test node and is also the ceiling cassandra.sh enforces.
MACHINA_CASSANDRA_HEAP="${MACHINA_CASSANDRA_HEAP:-1G}"

# Pinned so every developer and CI run the same servers. To move a pin, change
# it here; install.sh notices the cached build no longer matches and rebuilds.
# v2.12.3: verified to build with `go install` (Go 1.26) and to pass
# `nats server check jetstream`; needs Go >= 1.24.
NATS_SERVER_VERSION="${NATS_SERVER_VERSION:-v2.12.3}"
# The only natscli version the Go module proxy lists (`go list -m -versions
# github.com/nats-io/natscli`); its go.mod needs Go >= 1.26.
NATSCLI_VERSION="${NATSCLI_VERSION:-v0.5.1}"
# 5.0.x runs on Java 11/17; 4.x does not start on Java 17.
CASSANDRA_VERSION="${CASSANDRA_VERSION:-5.0.9}"

export ROOT MACHINA_CACHE MACHINA_STATE \
  MACHINA_NATS_PORT MACHINA_NATS_MONITOR_PORT \
  MACHINA_CQL_PORT MACHINA_CASSANDRA_STORAGE_PORT MACHINA_CASSANDRA_JMX_PORT \
  MACHINA_CASSANDRA_HEAP NATS_SERVER_VERSION NATSCLI_VERSION CASSANDRA_VERSION

log() {
  printf '[harness %s] %s\n' "${0##*/}" "$*" >&2
}

die() {
  printf '[harness %s] ERROR: %s\n' "${0##*/}" "$*" >&2
  exit 1
}

# True if something accepts TCP connections on 127.0.0.1:$1 or listens on the
# port on any address. ss sees listeners bound to other interfaces too; the
# /dev/tcp probe is the fallback where ss is absent.
port_in_use() {
  local port=$1
  if command -v ss >/dev/null 2>&1; then
    [[ -n "$(ss -Hltn "sport = :$port" 2>/dev/null)" ]] && return 0
  fi
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

# Dies naming the env var to change when a port we are about to bind is taken.
# Pairs are "PORT VARNAME".
require_free_ports() {
  local port var
  while (($# >= 2)); do
    port=$1 var=$2
    shift 2
    if port_in_use "$port"; then
      die "port $port is already in use by another process; pick a free one with $var=<port> (and a separate MACHINA_STATE if another instance of this harness owns it)"
    fi
  done
}

# True while any thread of process $1 is not a zombie. PID 1 on these
# machines is slow to reap orphans, so `kill -0` keeps succeeding on a dead
# server; and a JVM's main thread turns zombie while its other threads are
# still shutting down and holding ports, so the leader's state alone is wrong.
pid_running() {
  local pid=$1 stat state
  kill -0 "$pid" 2>/dev/null || return 1
  [[ -d /proc/$pid/task ]] || return 0
  for stat in /proc/"$pid"/task/*/stat; do
    # The state follows the parenthesised command name, which may contain
    # spaces.
    state=$(sed -e 's/^.*) //' "$stat" 2>/dev/null | cut -d' ' -f1) || continue
    [[ -n $state && $state != Z ]] && return 0
  done
  return 1
}

# A pid counts as ours only if it is running and its command line contains
# $2 (a path unique to this MACHINA_STATE): after a reboot or a crash the
# number in a pid file may belong to an unrelated process, which we must never
# signal.
pid_is_ours() {
  local pid=$1 marker=$2 cmdline='' f
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  pid_running "$pid" || return 1
  if [[ -d /proc/$pid/task ]]; then
    # A zombie leader's own cmdline reads empty; any live thread has it.
    for f in "/proc/$pid/cmdline" /proc/"$pid"/task/*/cmdline; do
      cmdline=$(tr '\0' ' ' <"$f" 2>/dev/null) || continue
      [[ -n $cmdline ]] && break
    done
  else
    cmdline=$(ps -o args= -p "$pid" 2>/dev/null) || return 1
  fi
  [[ $cmdline == *"$marker"* ]]
}

# Prints the pid from pid file $1 if that process is alive and ours (marker
# $2); removes a stale pid file. Returns 1 when not running.
running_pid() {
  local pid_file=$1 marker=$2 pid
  [[ -f $pid_file ]] || return 1
  pid=$(<"$pid_file")
  if pid_is_ours "$pid" "$marker"; then
    printf '%s\n' "$pid"
    return 0
  fi
  log "removing stale pid file $pid_file (pid ${pid:-?} is not running)"
  rm -f "$pid_file"
  return 1
}

# Usage: stop_pid PID MARKER TIMEOUT_S NAME. SIGTERM, wait up to TIMEOUT_S
# for every thread to be gone, then SIGKILL. Only ever the recorded pid, and
# only if it is still ours: other agents run their own servers of the same
# name on this machine.
stop_pid() {
  local pid=$1 marker=$2 timeout=$3 name=$4 i
  if ! pid_is_ours "$pid" "$marker"; then
    log "$name (pid $pid) is not running"
    return 0
  fi
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 10; i++)); do
    pid_running "$pid" || { log "$name stopped"; return 0; }
    sleep 0.1
  done
  log "$name did not exit within ${timeout}s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    pid_running "$pid" || { log "$name killed"; return 0; }
    sleep 0.1
  done
  die "$name (pid $pid) survived SIGKILL"
}

# Keeps the previous run's log as *.1 so a fresh start's log holds only that run.
rotate_log() {
  local file=$1
  [[ -s $file ]] && mv -f "$file" "$file.1"
  : >"$file"
}

# Last lines of each given log, for error messages.
log_tail() {
  local file
  for file in "$@"; do
    [[ -s $file ]] || continue
    printf -- '----- last 40 lines of %s -----\n' "$file" >&2
    tail -n 40 "$file" >&2
  done
}

# The java to run: $JAVA_HOME's if set, else the one on PATH; fails when there is none.
java_bin() {
  if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
    printf '%s\n' "$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then
    command -v java
  else
    return 1
  fi
}

# Milliseconds since the epoch, for readiness timings.
now_ms() {
  date +%s%3N
}
