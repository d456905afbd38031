#!/usr/bin/env bash
# Runs the example network's processes: the fake API and the six services.
# Usage: test/harness/mesh.sh start|stop|status
# nats.sh and cassandra.sh must have started the servers (same MACHINA_STATE and ports).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

RUN_DIR="$MACHINA_STATE/run"
LOG_DIR="$MACHINA_STATE/logs"
# Start order matters only for stop (reverse): vertex is last to go.
SERVICES=(vertex data fetch aggregate invoke compute)
MACHINA_HTTP_PORT_BASE="${MACHINA_HTTP_PORT_BASE:-9300}"
MACHINA_FAKE_API_PORT="${MACHINA_FAKE_API_PORT:-8787}"
READY_TIMEOUT="${MACHINA_MESH_READY_TIMEOUT:-90}"

# Offsets match the services' own default probe ports (fetch 9301 … vertex 9306).
declare -A PORT_OFFSET=([fetch]=1 [invoke]=2 [aggregate]=3 [data]=4 [compute]=5 [vertex]=6)
probe_port() { echo $((MACHINA_HTTP_PORT_BASE + PORT_OFFSET[$1])); }

# The state dir on the command line tells our processes from another instance's.
marker() { printf '%s --machina-state=%s' "$1" "$MACHINA_STATE"; }

start_one() {
  local name=$1 script=$2 pid_file="$RUN_DIR/$1.pid" log_file="$LOG_DIR/$1.log"
  if running_pid "$pid_file" "$(marker "$script")" >/dev/null; then
    log "$name already running"
    return 0
  fi
  rotate_log "$log_file"
  # The services' young generation as in the image (deploy/docker/Dockerfile says why; invoke
  # keeps V8's default).
  local -a young=(--max-semi-space-size=32)
  [[ $name == invoke ]] && young=()
  (cd "$ROOT" && exec setsid node "${young[@]}" --import tsx "$script" "--machina-state=$MACHINA_STATE" >>"$log_file" 2>&1 </dev/null) &
  echo $! >"$pid_file"
}

wait_ready() {
  local name=$1 url=$2 script=$3 deadline
  deadline=$(($(date +%s) + READY_TIMEOUT))
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    if ! running_pid "$RUN_DIR/$name.pid" "$(marker "$script")" >/dev/null; then
      log_tail "$LOG_DIR/$name.log"
      die "$name exited during start-up (log above: $LOG_DIR/$name.log)"
    fi
    if (($(date +%s) > deadline)); then
      log_tail "$LOG_DIR/$name.log"
      die "$name not ready after ${READY_TIMEOUT}s at $url"
    fi
    sleep 0.3
  done
}

start() {
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  local t0 s
  t0=$(now_ms)
  export MACHINA_NATS_URL="nats://127.0.0.1:$MACHINA_NATS_PORT"
  export MACHINA_DATA_CASSANDRA_PORT="$MACHINA_CQL_PORT"
  export MACHINA_FETCH_SOURCES_SITESTATS_MANAGER_BASE_URL="http://127.0.0.1:$MACHINA_FAKE_API_PORT"
  export MACHINA_FETCH_SOURCES_TRAFFIC_MANAGER_BASE_URL="http://127.0.0.1:$MACHINA_FAKE_API_PORT"
  export MACHINA_FETCH_SOURCES_RANKINGS_MANAGER_BASE_URL="http://127.0.0.1:$MACHINA_FAKE_API_PORT"
  export MACHINA_FETCH_SOURCES_DIRECTORY_MANAGER_BASE_URL="http://127.0.0.1:$MACHINA_FAKE_API_PORT"
  # The fake API's demo key; a real deployment sets these from Secrets.
  export SITESTATS_API_KEY="${SITESTATS_API_KEY:-demo-key}" TRAFFIC_API_KEY="${TRAFFIC_API_KEY:-demo-key}"
  # The fake API's demo signing secret for the signed rankings source (config/default/fetch/sources/rankings.*).
  export RANKINGS_SIGNING_SECRET="${RANKINGS_SIGNING_SECRET:-demo-signing-secret}"
  export FAKE_API_PORT="$MACHINA_FAKE_API_PORT" FAKE_API_KEYS="${FAKE_API_KEYS:-demo-key:20/1000}"
  start_one fake-api test/fixtures/fake-api/main.ts
  for s in "${SERVICES[@]}"; do
    export "MACHINA_${s^^}_HTTP_PORT=$(probe_port "$s")"
    # Each service as its own NATS user (up.sh sets MACHINA_NATS_SECRETS), its password read
    # from a file: never on a command line or in a log.
    if [[ -n ${MACHINA_NATS_SECRETS:-} ]]; then
      export "MACHINA_${s^^}_NATS_USER=$s" "MACHINA_${s^^}_NATS_PASS_FILE=$MACHINA_NATS_SECRETS/$s"
    fi
    start_one "$s" "services/$s/src/main.ts"
  done
  wait_ready fake-api "http://127.0.0.1:$MACHINA_FAKE_API_PORT/_stats" test/fixtures/fake-api/main.ts
  for s in "${SERVICES[@]}"; do
    wait_ready "$s" "http://127.0.0.1:$(probe_port "$s")/readyz" "services/$s/src/main.ts"
  done
  log "mesh ready in $(($(now_ms) - t0)) ms (logs in $LOG_DIR)"
}

stop() {
  local i s pid script
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    s=${SERVICES[$i]} script="services/${SERVICES[$i]}/src/main.ts"
    if pid=$(running_pid "$RUN_DIR/$s.pid" "$(marker "$script")"); then
      stop_pid "$pid" "$(marker "$script")" 20 "$s"
    fi
    rm -f "$RUN_DIR/$s.pid"
  done
  if pid=$(running_pid "$RUN_DIR/fake-api.pid" "$(marker test/fixtures/fake-api/main.ts)"); then
    stop_pid "$pid" "$(marker test/fixtures/fake-api/main.ts)" 10 fake-api
  fi
  rm -f "$RUN_DIR/fake-api.pid"
}

status() {
  local s
  for s in fake-api "${SERVICES[@]}"; do
    local script="services/$s/src/main.ts"
    [[ $s == fake-api ]] && script=test/fixtures/fake-api/main.ts
    if running_pid "$RUN_DIR/$s.pid" "$(marker "$script")" >/dev/null; then echo "$s: running"; else echo "$s: stopped"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) die "usage: $0 start|stop|status" ;;
esac
