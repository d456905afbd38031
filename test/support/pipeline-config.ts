// The config tree of a pipeline flow (the pipeline bench, the scaling demo and the scale-out and
// NATS cluster tests): sources against the fake API, one constant ledger of N leads, a query set
// per source and one manual trigger firing them all, and one aggregator for websites.
import { writeConfig } from "./service-procs";

/** Names in a flow's config (the name rule: lower-case letters, digits, `_`). */
export const PIPELINE = {
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

/** One source of a flow: its limiter (YAML) and the env var holding its API key. */
export interface FlowSource {
  name: string;
  /** Default `unlimited`. */
  limiter?: string;
  /** Default PIPELINE.keyEnv. */
  keyEnv?: string;
}

/** Options of {@link writePipelineConfig}. */
export interface FlowConfigOptions {
  /** Default: the one unlimited source PIPELINE.source, whose query set is PIPELINE.querySet. */
  sources?: FlowSource[];
  /** The website aggregator's YAML. Default `aggregator: passthrough`. */
  aggregator?: string;
}

/** The query set of `source` in a flow's config. */
export const querySetOf = (source: string): string =>
  source === PIPELINE.source ? PIPELINE.querySet : `${PIPELINE.querySet}_${source}`;

/** Writes the config tree for `n` leads against the fake API at `apiUrl`; returns its root. */
export function writePipelineConfig(n: number, apiUrl: string, opts: FlowConfigOptions = {}): string {
  const sources = opts.sources ?? [{ name: PIPELINE.source }];
  const leads = Array.from({ length: n }, (_, i) => `  - { domain: ${leadDomain(i)} }`).join("\n");
  const files: Record<string, string> = {
    [`invoke/ledgers/${PIPELINE.ledger}.yaml`]: `source: constant\nlead_id: domain\nleads:\n${leads}\n`,
    [`invoke/triggers/${PIPELINE.trigger}.yaml`]: `type: manual\nquery_sets: [${sources.map((s) => querySetOf(s.name)).join(", ")}]\n`,
    [`aggregate/aggregators/${PIPELINE.type}.yaml`]: opts.aggregator ?? "aggregator: passthrough\n",
  };
  for (const s of sources) {
    files[`fetch/sources/${s.name}.yaml`] = [
      `name: ${s.name}`,
      `limiter: ${s.limiter ?? "unlimited"}`,
      `data: { api_key: { env: ${s.keyEnv ?? PIPELINE.keyEnv} } }`,
      "manager:",
      "  type: http-auth",
      `  base_url: "${apiUrl}"`,
      "  timeout: 10s",
      '  auth: { type: api_key, header: X-Api-Key, value: "{{data.api_key}}" }',
      "  retries: { max: 2, base_delay: 100ms }",
      "queries:",
      `  ${PIPELINE.query}:`,
      "    path: /v3/sites/{{lead.domain}}",
      "    extract:",
      `      site: { type: ${PIPELINE.type}, path: site }`,
      "",
    ].join("\n");
    files[`invoke/query_sets/${querySetOf(s.name)}.yaml`] =
      `source: ${s.name}\nqueries: [${PIPELINE.query}]\nledger: ${PIPELINE.ledger}\n`;
  }
  return writeConfig(files);
}
