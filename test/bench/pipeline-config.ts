// The config tree of the pipeline bench: one unlimited source against the fake API, a constant
// ledger of N leads, one query set and a manual trigger, passthrough aggregation of websites.
import { writeConfig } from "../support/service-procs";

/** Names in the bench's config (the name rule: lower-case letters, digits, `_`). */
export const BENCH = {
  source: "benchsrc",
  query: "site",
  ledger: "benchleads",
  querySet: "benchqs",
  trigger: "benchfire",
  type: "website",
  keyEnv: "BENCH_API_KEY",
} as const;

/** The domain of lead `i`, also its id. */
export const leadDomain = (i: number): string => `l${i}.bench`;

/** Writes the config tree for `n` leads against the fake API at `apiUrl`; returns its root. */
export function writeBenchConfig(n: number, apiUrl: string): string {
  const leads = Array.from({ length: n }, (_, i) => `  - { domain: ${leadDomain(i)} }`).join("\n");
  return writeConfig({
    [`fetch/sources/${BENCH.source}.yaml`]: [
      `name: ${BENCH.source}`,
      "limiter: unlimited",
      `data: { api_key: { env: ${BENCH.keyEnv} } }`,
      "manager:",
      "  type: http-auth",
      `  base_url: "${apiUrl}"`,
      "  timeout: 10s",
      '  auth: { type: api_key, header: X-Api-Key, value: "{{data.api_key}}" }',
      "  retries: { max: 2, base_delay: 100ms }",
      "queries:",
      `  ${BENCH.query}:`,
      "    path: /v3/sites/{{lead.domain}}",
      "    extract:",
      `      site: { type: ${BENCH.type}, path: site }`,
      "",
    ].join("\n"),
    [`invoke/ledgers/${BENCH.ledger}.yaml`]: `source: constant\nlead_id: domain\nleads:\n${leads}\n`,
    [`invoke/query_sets/${BENCH.querySet}.yaml`]: `source: ${BENCH.source}\nqueries: [${BENCH.query}]\nledger: ${BENCH.ledger}\n`,
    [`invoke/triggers/${BENCH.trigger}.yaml`]: `type: manual\nquery_sets: [${BENCH.querySet}]\n`,
    [`aggregate/aggregators/${BENCH.type}.yaml`]: "aggregator: passthrough\n",
  });
}
