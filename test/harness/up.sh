#!/usr/bin/env bash
# The example network on default ports: `make up`, `make down`, `make status`.
# Usage: test/harness/up.sh up|down|status
set -euo pipefail
MACHINA_STATE="${MACHINA_STATE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.machina/up}"
export MACHINA_STATE
# shellcheck source-path=SCRIPTDIR source=env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
H="$ROOT/test/harness"

# One NATS user per service with least-privilege permissions (tools/nats-admin.ts): passwords in
# $SECRETS (made once, mode 0600), handed to nats-server as NATS_PASSWORD_<USER> and to each
# service as a password file (mesh.sh); the admin user creates the shared streams and bucket.
SECRETS="$MACHINA_STATE/secrets/nats"
admin() { (cd "$ROOT" && node --import tsx tools/nats-admin.ts "$@"); }

# nats-server with the users: the passwords go to its environment only (a subshell), not to
# the services started later.
start_nats() {
  mkdir -p "$MACHINA_STATE/run"
  admin secrets --dir "$SECRETS" >&2
  admin auth-config --prefix "${MACHINA_MESH_PREFIX:-machina}" --out "$MACHINA_STATE/run/nats-auth.conf"
  (
    local f u
    for f in "$SECRETS"/*; do
      u=${f##*/}
      export "NATS_PASSWORD_${u^^}=$(<"$f")"
    done
    export MACHINA_NATS_AUTH_CONF="$MACHINA_STATE/run/nats-auth.conf"
    bash "$H/nats.sh" start
  )
}

up() {
  start_nats
  MACHINA_NATS_URL="nats://127.0.0.1:$MACHINA_NATS_PORT" MACHINA_NATS_USER=admin MACHINA_NATS_PASS_FILE="$SECRETS/admin" \
    admin bootstrap >&2
  bash "$H/cassandra.sh" start
  MACHINA_NATS_SECRETS="$SECRETS" bash "$H/mesh.sh" start
  local nats="$MACHINA_CACHE/bin/nats -s nats://127.0.0.1:$MACHINA_NATS_PORT"
  cat <<MSG

Machina is up (state and logs in $MACHINA_STATE). The nats CLI is $MACHINA_CACHE/bin/nats.
NATS requires a user: as the admin (every service has its own, with least privilege),
  export NATS_USER=admin NATS_PASSWORD="\$(cat $SECRETS/admin)"
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
