# Machina's front door. `make up` runs the example network, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help
H := test/harness

.PHONY: help setup deps up down status test test-unit typecheck lint format docs protos bench build

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: ## install what is missing: pnpm, node deps, nats-server + nats CLI, Cassandra jars
	@bash $(H)/install.sh all
	@$(MAKE) --no-print-directory deps

deps:
	@bash $(H)/install.sh pnpm
	@if [ -f pnpm-lock.yaml ]; then pnpm install --frozen-lockfile --reporter=silent; else pnpm install --reporter=silent; fi

up: setup ## start nats-server, Cassandra, the fake API and all six services
	@bash $(H)/up.sh up

down: ## stop everything `make up` started
	@bash $(H)/up.sh down

status: ## what `make up` has running
	@bash $(H)/up.sh status

test: setup ## unit, integration and end-to-end tests against real servers
	@bash $(H)/run-tests.sh

test-unit: deps ## unit tests only (no servers)
	@node --import tsx --test --test-reporter=spec $$(find test/unit -name '*.test.ts' | sort)

build: deps ## bundle each service to dist/<name>/main.mjs (plain Node, what the images run), with dist/protos, dist/config
	@pnpm run build

typecheck: deps ## tsc in strict mode over every package
	@pnpm exec tsc -p tsconfig.json --noEmit

lint: deps ## eslint, formatting, exact dependencies, and generated files up to date
	@pnpm exec eslint .
	@pnpm exec prettier --check .
	@node tools/check-deps.mjs
	@bash libs/protos/scripts/gen-types.sh --check
	@node --import tsx tools/gen-component-docs.ts --check

protos: deps ## regenerate the TypeScript declarations of protos/*.proto (libs/protos/src/generated)
	@bash libs/protos/scripts/gen-types.sh

format: deps ## apply prettier to the repo
	@pnpm exec prettier --write .

docs: deps ## regenerate docs/components.md, docs/metrics.md, the kustomize copy of config/ and the NATS users
	@node --import tsx tools/gen-component-docs.ts
	@node --import tsx tools/gen-metrics-docs.ts
	@node deploy/k8s/sync-config.mjs
	@node --import tsx tools/nats-admin.ts auth-config --out deploy/k8s/base/nats/auth.conf

bench: setup ## benchmarks under test/bench (numbers and ratios vs a same-run baseline)
	@bash $(H)/run-bench.sh

.PHONY: scale-demo
scale-demo: setup ## 3 fetch, 2 aggregate, 2 data replicas on one NATS and Cassandra; per-replica counts, rows exactly once
	@bash $(H)/run-bench.sh test/bench/scale-demo.ts
