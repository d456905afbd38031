#!/usr/bin/env bash
# `make up`: the example network on default ports, then what to try.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
MACHINA_STATE="${MACHINA_STATE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.machina/up}"
export MACHINA_STATE
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
H="$ROOT/test/harness"
bash "$H/nats.sh" start
bash "$H/cassandra.sh" start
bash "$H/mesh.sh" start
NATS="$MACHINA_CACHE/bin/nats"
cat <<MSG

Machina is up (state and logs in $MACHINA_STATE). The nats CLI is $NATS.
Try (the README shows the answers to expect):
  $NATS -s nats://127.0.0.1:$MACHINA_NATS_PORT micro ls
  $NATS -s nats://127.0.0.1:$MACHINA_NATS_PORT req machina.fetch.fetch '{"source":"sitestats","query":"site","lead":{"id":"example.com","args":{"domain":"example.com"}}}'
  $NATS -s nats://127.0.0.1:$MACHINA_NATS_PORT req machina.invoke.fire '{"trigger":"refresh"}'
  $NATS -s nats://127.0.0.1:$MACHINA_NATS_PORT req machina.compute.get.latest '{"args":{"type":"website","key":{"domain":"example.com"}}}'
Stop everything with: make down
MSG
