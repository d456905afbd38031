# shellcheck shell=bash
# Ports and state of the servers `make test` runs, apart from `make up`'s, so
# tests can run while the example mesh is up. Sourced before env.sh.
export MACHINA_STATE="${MACHINA_TEST_STATE:-${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}/.machina/test}"
export MACHINA_NATS_PORT="${MACHINA_TEST_NATS_PORT:-14222}"
export MACHINA_NATS_MONITOR_PORT="${MACHINA_TEST_NATS_MONITOR_PORT:-18222}"
export MACHINA_CQL_PORT="${MACHINA_TEST_CQL_PORT:-19042}"
export MACHINA_CASSANDRA_STORAGE_PORT="${MACHINA_TEST_CASSANDRA_STORAGE_PORT:-17000}"
export MACHINA_CASSANDRA_JMX_PORT="${MACHINA_TEST_CASSANDRA_JMX_PORT:-17199}"
export MACHINA_HTTP_PORT_BASE="${MACHINA_TEST_HTTP_PORT_BASE:-19300}"
export MACHINA_FAKE_API_PORT="${MACHINA_TEST_FAKE_API_PORT:-18787}"
export MACHINA_NATS_SERVER_NAME="machina-test"
