#!/usr/bin/env bash
# `make test`: starts the servers the tests need (unless already running), runs
# unit, integration and end-to-end tests with node's test runner, and stops
# exactly what it started.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=test-env.sh
. "$(dirname "${BASH_SOURCE[0]}")/test-env.sh"
# shellcheck source-path=SCRIPTDIR source=env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
H="$ROOT/test/harness"

started=()
cleanup() {
  local rc=$? s
  bash "$H/mesh.sh" stop >/dev/null 2>&1 || true
  for s in "${started[@]}"; do bash "$H/$s.sh" stop || true; done
  exit $rc
}
trap cleanup EXIT INT TERM

# Servers this run starts begin empty, so no test sees streams or rows of an earlier run.
if ! bash "$H/nats.sh" status | grep -q running && ! bash "$H/cassandra.sh" status | grep -q running; then
  rm -rf "$MACHINA_STATE/data"
fi
for s in nats cassandra; do
  if bash "$H/$s.sh" status | grep -q running; then
    log "$s already running in $MACHINA_STATE; reusing it"
  else
    bash "$H/$s.sh" start
    started=("$s" "${started[@]}")
  fi
done

# The dashboard test drives Debian's chromium (installed here when missing).
bash "$H/chromium.sh" install

export MACHINA_NATS_URL="nats://127.0.0.1:$MACHINA_NATS_PORT"
export MACHINA_NATS_CLI="$MACHINA_CACHE/bin/nats"
cd "$ROOT"
mapfile -t files < <(find test/unit test/integration test/e2e -name '*.test.ts' 2>/dev/null | sort)
((${#files[@]})) || die "no test files found under test/"
node --import tsx --test --test-reporter=spec --test-concurrency=1 "${files[@]}"
