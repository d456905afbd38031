// Writes docs/metrics.md: the metrics every service's /metrics page shows. The shared ones come
// from the runtime's own registry (createMetrics: prom-client's process and Node.js metrics plus
// the request, message and lag metrics); each service's own are read from its source, every
// `new Counter|Gauge|Histogram|Summary({ name: "…" })`, `addCounter(m, "…")` and
// `observeGauge(m, "…")` under services/<name>/src. `--check` fails when the page is stale.
// test/integration/grafana-metrics.test.ts scrapes the running services and fails when this
// list and their real /metrics pages disagree, so a metric this scan cannot see is caught too.
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { format, resolveConfig } from "prettier";
import ts from "typescript";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const OUT = path.join(ROOT, "docs/metrics.md");

// The workspace packages, by name. The test package depends on every one of them (the root
// package lists only some), so they are resolved from there.
const fromTests = createRequire(path.join(ROOT, "test/package.json"));
async function load<T>(pkg: string): Promise<T> {
  return (await import(pathToFileURL(fromTests.resolve(pkg)).href)) as T;
}

interface PromMetric {
  name: string;
  help: string;
  type: MetricDoc["type"];
  labelNames?: string[];
}
interface RuntimeModule {
  createMetrics(service: string): { registry: { getMetricsAsArray(): unknown[] } };
}

/** The six services, in pipeline order (the order of the page's sections). */
export const SERVICES = ["fetch", "invoke", "aggregate", "data", "compute", "vertex"] as const;
export type ServiceNameOf = (typeof SERVICES)[number];

/** One metric family as documented. */
export interface MetricDoc {
  name: string;
  type: "counter" | "gauge" | "histogram" | "summary";
  /** Label names the code declares (every series also carries `service`; histograms `le`). */
  labels: string[];
  help: string;
  /** Where it is declared: a source file and line, or the runtime for shared ones. */
  origin: string;
}

/** Every metric a service's /metrics shows: `shared` on all six, `byService` on one each. */
export interface MetricCatalog {
  shared: MetricDoc[];
  byService: Record<ServiceNameOf, MetricDoc[]>;
}

const CONSTRUCTORS: Record<string, MetricDoc["type"]> = {
  Counter: "counter",
  Gauge: "gauge",
  Histogram: "histogram",
  Summary: "summary",
};
const HELPERS: Record<string, MetricDoc["type"]> = { addCounter: "counter", observeGauge: "gauge" };

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const full = path.join(dir, entry);
    if (statSync(full).isDirectory()) out.push(...tsFiles(full));
    else if (entry.endsWith(".ts") && !entry.endsWith(".d.ts")) out.push(full);
  }
  return out;
}

// A string literal, a template without substitutions, or `+` of those; undefined otherwise.
function literal(node: ts.Node | undefined): string | undefined {
  if (node === undefined) return undefined;
  if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return node.text;
  if (ts.isParenthesizedExpression(node)) return literal(node.expression);
  if (ts.isBinaryExpression(node) && node.operatorToken.kind === ts.SyntaxKind.PlusToken) {
    const l = literal(node.left);
    const r = literal(node.right);
    return l === undefined || r === undefined ? undefined : l + r;
  }
  return undefined;
}

function stringArray(node: ts.Node | undefined, where: string): string[] {
  if (node === undefined) return [];
  if (!ts.isArrayLiteralExpression(node)) throw new Error(`${where}: label names must be an array literal`);
  return node.elements.map((e) => {
    const s = literal(e);
    if (s === undefined) throw new Error(`${where}: label names must be string literals`);
    return s;
  });
}

function property(obj: ts.ObjectLiteralExpression, key: string): ts.Expression | undefined {
  for (const p of obj.properties) if (ts.isPropertyAssignment(p) && p.name.getText() === key) return p.initializer;
  return undefined;
}

/** The metrics declared in one source file (throws on a declaration whose name is not a literal). */
export function scanFile(file: string): MetricDoc[] {
  const text = readFileSync(file, "utf8");
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const rel = path.relative(ROOT, file);
  const found: MetricDoc[] = [];
  const visit = (node: ts.Node) => {
    const where = () => `${rel}:${sf.getLineAndCharacterOfPosition(node.getStart()).line + 1}`;
    if (
      ts.isNewExpression(node) &&
      ts.isIdentifier(node.expression) &&
      Object.hasOwn(CONSTRUCTORS, node.expression.text)
    ) {
      const arg = node.arguments?.[0];
      if (arg !== undefined && ts.isObjectLiteralExpression(arg)) {
        const name = literal(property(arg, "name"));
        const help = literal(property(arg, "help"));
        if (name === undefined || help === undefined)
          throw new Error(
            `${where()}: a metric's name and help must be string literals so docs/metrics.md can list it`,
          );
        const labels = stringArray(property(arg, "labelNames"), where());
        found.push({ name, type: CONSTRUCTORS[node.expression.text], labels, help, origin: where() });
      }
    } else if (
      ts.isCallExpression(node) &&
      ts.isIdentifier(node.expression) &&
      Object.hasOwn(HELPERS, node.expression.text)
    ) {
      const [, nameArg, helpArg, labelArg] = node.arguments;
      const name = literal(nameArg);
      const help = literal(helpArg);
      if (name === undefined || help === undefined)
        throw new Error(`${where()}: a metric's name and help must be string literals so docs/metrics.md can list it`);
      const type = HELPERS[node.expression.text];
      const labels = type === "counter" ? stringArray(labelArg, where()) : [];
      found.push({ name, type, labels, help, origin: where() });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

/** Shared metrics from the runtime's registry; each service's from its source. */
export async function collectMetrics(): Promise<MetricCatalog> {
  const { createMetrics } = await load<RuntimeModule>("@machina/runtime");
  const registry = createMetrics("docs").registry;
  const shared = registry.getMetricsAsArray().map((m) => {
    const meta = m as PromMetric;
    return {
      name: meta.name,
      type: meta.type,
      labels: [...(meta.labelNames ?? [])],
      help: meta.help,
      origin: meta.name.startsWith("machina_") ? "libs/runtime/src/metrics.ts" : "prom-client default metrics",
    };
  });
  const byService = {} as Record<ServiceNameOf, MetricDoc[]>;
  for (const svc of SERVICES) {
    const docs = tsFiles(path.join(ROOT, "services", svc, "src")).flatMap(scanFile);
    docs.sort((a, b) => a.name.localeCompare(b.name));
    byService[svc] = docs;
  }
  // Metrics declared in a library (other than the runtime's own registry) belong to no one service.
  for (const lib of readdirSync(path.join(ROOT, "libs")).sort()) {
    const src = path.join(ROOT, "libs", lib, "src");
    try {
      statSync(src);
    } catch {
      continue;
    }
    for (const file of tsFiles(src)) {
      if (path.relative(ROOT, file) === path.join("libs", "runtime", "src", "metrics.ts")) continue;
      const stray = scanFile(file);
      if (stray.length > 0)
        throw new Error(
          `${stray[0].origin}: ${stray[0].name} is declared in a library; declare it in a service (or in createMetrics) so docs/metrics.md knows where it shows`,
        );
    }
  }
  return { shared, byService };
}

/** Default probe port of each service, read from its spec. */
export async function probePorts(): Promise<Record<ServiceNameOf, number>> {
  const ports = {} as Record<ServiceNameOf, number>;
  for (const svc of SERVICES) {
    const mod = await load<Record<string, { name: string; httpPort: number } | undefined>>(`@machina/${svc}`);
    const spec = mod[`${svc}Service`];
    if (spec?.name !== svc) throw new Error(`@machina/${svc} exports no ${svc}Service spec`);
    ports[svc] = spec.httpPort;
  }
  return ports;
}

// Pipes would end the cell and `<type>` would read as an HTML tag.
const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/</g, "\\<").replace(/\s+/g, " ").trim();
const labelCell = (labels: string[]) => (labels.length === 0 ? "—" : labels.map((l) => `\`${l}\``).join(", "));

function table(docs: MetricDoc[]): string {
  const rows = docs.map((d) => `| \`${d.name}\` | ${d.type} | ${labelCell(d.labels)} | ${cell(d.help)} |`);
  return ["| Metric | Type | Labels | Meaning |", "| --- | --- | --- | --- |", ...rows].join("\n");
}

function intro(ports: Record<ServiceNameOf, number>): string {
  const portRows = SERVICES.map(
    (s) => `| ${s} | ${ports[s]} | \`MACHINA_${s.toUpperCase()}_HTTP_PORT\` | \`127.0.0.1:${ports[s]}\` |`,
  );
  return `# Metrics reference

Generated by \`make docs\` (tools/gen-metrics-docs.ts) from the runtime's registry and the services'
source; do not edit by hand. \`test/integration/grafana-metrics.test.ts\` starts all six services,
scrapes every \`/metrics\` page and fails when this page and what they really expose disagree, and
when \`deploy/grafana/machina-dashboard.json\` names a metric or label no service has.

## Probe endpoints

Every service process serves three paths on its probe port (plain HTTP, no authentication):

| Path | Answers |
| --- | --- |
| \`/metrics\` | Prometheus text format (prom-client): the metrics below |
| \`/healthz\` | Liveness: \`200\` while the NATS connection is open, else \`503\`; JSON body \`{ok, service, node, nats, waitingFor}\` |
| \`/readyz\` | Readiness: \`200\` once set up, while not draining and while no dependency it waits for is down (\`waitingFor\` names them), else \`503\`; same body |

Any other path answers \`404\`.

## Probe ports

The port is \`http.port\` in each service's config (env \`MACHINA_<SERVICE>_HTTP_PORT\`, or
\`MACHINA_HTTP_PORT\`; \`0\` picks a free port, which the "service started" log line names). It binds
\`http.host\`, default \`127.0.0.1\`: a Prometheus in another container or pod needs
\`MACHINA_HTTP_HOST=0.0.0.0\`. \`make up\` uses the defaults; \`make test\` moves the whole range to
\`19300\`+ (\`MACHINA_TEST_HTTP_PORT_BASE\`).

| Service | Default port | Env override | \`make up\` target |
| --- | --- | --- | --- |
${portRows.join("\n")}

\`deploy/prometheus/prometheus.yml\` scrapes exactly these targets, and shows the Kubernetes
pod-annotation variant; \`deploy/grafana/machina-dashboard.json\` charts the metrics below.

## Labels every series carries

Every series has \`service\` (the service name: \`fetch\`, …, \`vertex\`); Prometheus adds \`job\` and
\`instance\` when it scrapes. Several replicas of a service differ by \`instance\`. Histograms also have
\`le\` on their \`_bucket\` series and come with \`_sum\` and \`_count\`.

Values of the common outcome labels:

- \`machina_requests_total{outcome}\`: \`ok\`, or the error code answered (\`BAD_REQUEST\`, \`NOT_FOUND\`,
  \`UNAVAILABLE\`, …).
- \`machina_messages_total{outcome}\`: \`ack\` (done), \`nak\` (retryable failure, redelivered later),
  \`delay\` (over quota: waits on the stream, not counted as an attempt), \`dead\` (dead-lettered to
  the DLQ stream), \`redelivered-done\` (a redelivery of work already done, acknowledged without
  doing it again), and \`part-dead\`, counted once per part of a message dead-lettered on its own
  (the message itself is counted with its own outcome too).
- The \`consumer\` label of \`machina_messages_total\` and \`machina_message_seconds\` is the worker
  name (\`fetch-<source>\`, \`invoke-handler\`, \`aggregate\`, …); that of \`machina_consumer_pending\` is
  the JetStream durable, with its \`stream\` (\`MACHINA_FETCH\`, \`MACHINA_FETCHED\`, …). Fetch has one
  consumer per source, so its lag and its over-quota \`delay\`s are per source.
- \`machina_compute_requests_total{from}\`: \`cache\` (answered from the result cache) or \`run\`
  (computed).
`;
}

/** The whole page, formatted as prettier formats it (so \`make lint\` accepts it). */
export async function renderMetricsDoc(): Promise<string> {
  const catalog = await collectMetrics();
  const ports = await probePorts();
  const runtime = catalog.shared.filter((d) => d.name.startsWith("machina_"));
  const defaults = catalog.shared.filter((d) => !d.name.startsWith("machina_"));
  const parts = [
    intro(ports),
    `## Every service

### Mesh runtime (libs/runtime)

Request/reply endpoints, durable workers and consumer lag, the same on every service.

${table(runtime)}

### Process and Node.js (prom-client default metrics)

${table(defaults)}
`,
  ];
  for (const svc of SERVICES) {
    const docs = catalog.byService[svc];
    const files = [...new Set(docs.map((d) => d.origin.replace(/:\d+$/, "")))].sort();
    parts.push(
      docs.length === 0
        ? `## ${svc}\n\nNo metrics of its own yet: only the ones every service has.\n`
        : `## ${svc}\n\nDeclared in ${files.map((f) => `\`${f}\``).join(", ")}.\n\n${table(docs)}\n`,
    );
  }
  const options = (await resolveConfig(OUT)) ?? {};
  return format(parts.join("\n"), { ...options, parser: "markdown", filepath: OUT });
}

async function main(): Promise<void> {
  const text = await renderMetricsDoc();
  if (process.argv.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(OUT, "utf8");
    } catch {
      // A missing page is stale like any other.
    }
    if (current !== text) {
      console.error("docs/metrics.md is stale: run `make docs` and commit the result");
      process.exit(1);
    }
  } else {
    writeFileSync(OUT, text);
    console.log(`wrote ${path.relative(process.cwd(), OUT)}`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
