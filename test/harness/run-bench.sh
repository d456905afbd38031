#!/usr/bin/env bash
# `make bench`: starts a nats-server for the benchmarks (unless one is already
# running in the bench state dir), and a Cassandra when a selected bench says it
# needs one (a `// bench-needs: cassandra` line), runs every test/bench/*.bench.ts
# one after the other, and stops only what it started. Its own state dir and
# ports, so it can run while `make up` or `make test` servers are up.
# Usage: test/harness/run-bench.sh [bench-file ...]   (default: all of test/bench)
set -euo pipefail
ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
export MACHINA_STATE="${MACHINA_BENCH_STATE:-$ROOT/.machina/bench}"
export MACHINA_NATS_PORT="${MACHINA_BENCH_NATS_PORT:-44222}"
export MACHINA_NATS_MONITOR_PORT="${MACHINA_BENCH_NATS_MONITOR_PORT:-48222}"
export MACHINA_NATS_SERVER_NAME="machina-bench"
# Apart from `make up` (9042/7000/7199) and `make test` (19042/17000/17199).
export MACHINA_CQL_PORT="${MACHINA_BENCH_CQL_PORT:-49042}"
export MACHINA_CASSANDRA_STORAGE_PORT="${MACHINA_BENCH_CASSANDRA_STORAGE_PORT:-47000}"
export MACHINA_CASSANDRA_JMX_PORT="${MACHINA_BENCH_CASSANDRA_JMX_PORT:-47199}"
# shellcheck source-path=SCRIPTDIR source=env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
H="$ROOT/test/harness"

started=()
# shellcheck disable=SC2317 # reached through the trap
cleanup() {
  local rc=$? s
  for s in "${started[@]}"; do bash "$H/$s.sh" stop || true; done
  exit "$rc"
}
trap cleanup EXIT INT TERM

cd "$ROOT"
if (($#)); then
  files=("$@")
else
  mapfile -t files < <(find test/bench -name '*.bench.ts' 2>/dev/null | sort)
fi
((${#files[@]})) || die "no benchmarks found under test/bench/"

# Starts server $1 unless it already runs in this state dir; a server this run
# starts begins empty (no streams or tables left from an earlier run).
start_server() {
  local s=$1
  if bash "$H/$s.sh" status | grep -q running; then
    log "$s already running in $MACHINA_STATE; reusing it"
    return 0
  fi
  rm -rf "${MACHINA_STATE:?}/data/$s"
  bash "$H/$s.sh" start
  # Stopped in reverse order of starting.
  started=("$s" "${started[@]}")
}

start_server nats
if grep -qlE '^// bench-needs:.*\bcassandra\b' "${files[@]}"; then
  start_server cassandra
fi

export MACHINA_NATS_URL="nats://127.0.0.1:$MACHINA_NATS_PORT"
# Every bench bounds its own running time; this bounds a hung one. --foreground
# keeps node in the terminal's process group, so Ctrl-C reaches it (it stops its own children).
BENCH_TIMEOUT="${MACHINA_BENCH_TIMEOUT:-900}"
rc=0
for f in "${files[@]}"; do
  log "running $f"
  timeout --foreground --kill-after=15 "$BENCH_TIMEOUT" node --import tsx "$f" || { rc=$?; log "$f failed (exit $rc)"; }
done
exit $rc
