#!/usr/bin/env bash
# `make down`: stops what `make up` started, by recorded PID.
set -euo pipefail
MACHINA_STATE="${MACHINA_STATE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.machina/up}"
export MACHINA_STATE
# shellcheck source-path=SCRIPTDIR source=env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
H="$ROOT/test/harness"
bash "$H/mesh.sh" stop
bash "$H/cassandra.sh" stop
bash "$H/nats.sh" stop
