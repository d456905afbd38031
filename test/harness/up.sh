#!/usr/bin/env bash
# The example network on default ports: `make up`, `make down`, `make status`.
# Usage: test/harness/up.sh up|down|status
set -euo pipefail
MACHINA_STATE="${MACHINA_STATE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.machina/up}"
export MACHINA_STATE
# shellcheck source-path=SCRIPTDIR source=env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
H="$ROOT/test/harness"

up() {
  bash "$H/nats.sh" start
  bash "$H/cassandra.sh" start
  bash "$H/mesh.sh" start
  local nats="$MACHINA_CACHE/bin/nats -s nats://127.0.0.1:$MACHINA_NATS_PORT"
  cat <<MSG

Machina is up (state and logs in $MACHINA_STATE). The nats CLI is $MACHINA_CACHE/bin/nats.
Try (the README shows the answers to expect):
  $nats micro ls
  $nats req machina.fetch.fetch '{"source":"sitestats","query":"site","lead":{"id":"example.com","args":{"domain":"example.com"}}}'
  $nats req machina.fetch.fetch '{"source":"rankings","query":"top","lead":{"id":"all","args":{}}}'
  $nats req machina.invoke.fire '{"trigger":"refresh"}'
  $nats req machina.compute.get.latest '{"args":{"type":"website","key":{"domain":"example.com"}}}'
Stop everything with: make down
MSG
}

down() {
  bash "$H/mesh.sh" stop
  bash "$H/cassandra.sh" stop
  bash "$H/nats.sh" stop
}

status() {
  echo "nats-server: $(bash "$H/nats.sh" status)"
  echo "cassandra: $(bash "$H/cassandra.sh" status)"
  bash "$H/mesh.sh" status
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up|down|status" ;;
esac
