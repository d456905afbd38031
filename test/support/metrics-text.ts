// Samples of a service's /metrics page (Prometheus text format), for tests and demos that read
// what each replica counted.

/** One sample line: series name, labels, value. */
export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a /metrics text; comment and blank lines are skipped. */
export function parseMetrics(text: string): MetricSample[] {
  const out: MetricSample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (m === null) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** GET /metrics of the probe port `port`, parsed. */
export async function scrapeMetrics(port: number): Promise<MetricSample[]> {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`);
  if (!r.ok) throw new Error(`GET :${port}/metrics answered ${r.status}`);
  return parseMetrics(await r.text());
}

/** Sum of the samples named `name` whose labels equal every entry of `match`. */
export function sumSamples(samples: readonly MetricSample[], name: string, match: Record<string, string> = {}): number {
  let sum = 0;
  for (const s of samples)
    if (s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  return sum;
}
