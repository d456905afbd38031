// Top self-time functions of V8 .cpuprofile files (from `node --cpu-prof`).
// Usage: node --import tsx test/bench/pipeline-profile-top.ts [--top 15] [--from ms] [--to ms] <file.cpuprofile|dir> ...
// (--from/--to: only samples that many ms after the profile started, e.g. to leave out start-up).
// A directory stands for every .cpuprofile under it (e.g. the pipeline bench's
// MACHINA_BENCH_CPU_PROF dir, one sub-directory per service).
import { readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** One function's self time. */
export interface SelfTime {
  name: string;
  where: string;
  ms: number;
  /** Share of the profile's non-idle time. */
  share: number;
}

/** Summary of one profile: wall span, busy (non-idle) time and the top self-time functions. */
export interface ProfileSummary {
  file: string;
  wallMs: number;
  busyMs: number;
  top: SelfTime[];
  /** Self time by package (node_modules), repo folder (libs/x, services/x), node core or native. */
  byModule: { module: string; ms: number; share: number }[];
}

function shortUrl(url: string): string {
  if (!url) return "";
  let p = url.startsWith("file://") ? fileURLToPath(url) : url;
  const nm = p.lastIndexOf("/node_modules/");
  if (nm >= 0) {
    p = p.slice(nm + "/node_modules/".length);
    // pnpm's store path: .pnpm/<pkg>@<ver>/node_modules/<pkg>/…
    const inner = p.lastIndexOf("/node_modules/");
    if (inner >= 0) p = p.slice(inner + "/node_modules/".length);
    return p;
  }
  return p.startsWith(ROOT) ? path.relative(ROOT, p) : p;
}

/** What a script belongs to: its package, its repo folder, node core, or native code (no script). */
function moduleOf(where: string): string {
  if (where === "") return "(native/gc)";
  const dep = /^node:internal\/deps\/([^/:]+)/.exec(where);
  if (dep) return dep[1] === "undici" ? "undici (fetch)" : dep[1];
  if (where.startsWith("node:")) return "node core";
  if (where.startsWith("wasm:")) return "wasm";
  const parts = where.split("/");
  if (parts[0] === "libs" || parts[0] === "services" || parts[0] === "test") return parts.slice(0, 2).join("/");
  if (where.startsWith("/")) return "other";
  return parts[0].startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

/** Which part of a profile to count, in ms since the profile started (default: all of it). */
export interface ProfileWindow {
  fromMs?: number;
  toMs?: number;
}

/** Self time per function (name + script + line), largest first, over the samples in `window`. */
export function summarise(file: string, top = 15, window: ProfileWindow = {}): ProfileSummary {
  const prof = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<string, { name: string; where: string; us: number }>();
  const samples = prof.samples ?? [];
  const deltas = prof.timeDeltas ?? [];
  const fromUs = (window.fromMs ?? 0) * 1000;
  const toUs = (window.toMs ?? Infinity) * 1000;
  let idleUs = 0;
  let totalUs = 0;
  let at = 0;
  for (let i = 0; i < samples.length; i++) {
    at += deltas[i] ?? 0;
    if (at < fromUs || at >= toUs) continue;
    // A sample's time is the gap to the next sample (the last one gets the previous gap).
    const us = Math.max(0, deltas[i + 1] ?? deltas[i] ?? 0);
    const node = byId.get(samples[i]);
    if (!node) continue;
    totalUs += us;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = functionName || "(anonymous)";
    if (name === "(idle)") {
      idleUs += us;
      continue;
    }
    const where = url ? `${shortUrl(url)}:${lineNumber + 1}` : "";
    const k = `${name}\u0000${where}`;
    const e = selfUs.get(k) ?? { name, where, us: 0 };
    e.us += us;
    selfUs.set(k, e);
  }
  const busyUs = totalUs - idleUs;
  const sorted = [...selfUs.values()].sort((a, b) => b.us - a.us).slice(0, top);
  const modules = new Map<string, number>();
  for (const e of selfUs.values()) {
    const m = moduleOf(e.where);
    modules.set(m, (modules.get(m) ?? 0) + e.us);
  }
  return {
    file,
    wallMs: totalUs / 1000,
    busyMs: busyUs / 1000,
    top: sorted.map((e) => ({ name: e.name, where: e.where, ms: e.us / 1000, share: busyUs > 0 ? e.us / busyUs : 0 })),
    byModule: [...modules.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([module, us]) => ({ module, ms: us / 1000, share: busyUs > 0 ? us / busyUs : 0 })),
  };
}

/** The summary as text lines. */
export function formatSummary(s: ProfileSummary, label = s.file): string[] {
  const lines = [
    `${label}: ${(s.busyMs / 1000).toFixed(1)} s not idle of ${(s.wallMs / 1000).toFixed(1)} s sampled (shares of the not-idle time)`,
  ];
  lines.push(
    `  by module: ${s.byModule
      .slice(0, 8)
      .map((m) => `${m.module} ${(m.share * 100).toFixed(0)} %`)
      .join(", ")}`,
  );
  for (const t of s.top)
    lines.push(
      `  ${t.ms.toFixed(0).padStart(7)} ms ${(t.share * 100).toFixed(1).padStart(5)} %  ${t.name}${t.where ? `  ${t.where}` : ""}`,
    );
  return lines;
}

/** Every .cpuprofile file under `p` (or `p` itself), sorted. */
export function profileFiles(p: string): string[] {
  if (!statSync(p).isDirectory()) return [p];
  return readdirSync(p, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".cpuprofile"))
    .map((f) => path.join(p, f))
    .sort();
}

/**
 * The summary of the busiest profile under `dir` (a process's main thread; tsx's loader thread
 * writes its own), or undefined when none was written.
 */
export function busiestProfile(dir: string, top = 15, window: ProfileWindow = {}): ProfileSummary | undefined {
  const files = profileFiles(dir);
  if (files.length === 0) return undefined;
  return files.map((f) => summarise(f, top, window)).sort((a, b) => b.busyMs - a.busyMs)[0];
}

function main(argv: string[]): void {
  let top = 15;
  const window: ProfileWindow = {};
  const inputs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--top") top = Number(argv[++i]);
    else if (argv[i] === "--from") window.fromMs = Number(argv[++i]);
    else if (argv[i] === "--to") window.toMs = Number(argv[++i]);
    else inputs.push(argv[i]);
  }
  if (inputs.length === 0 || !Number.isInteger(top) || top < 1) {
    process.stderr.write("usage: pipeline-profile-top.ts [--top N] [--from ms] [--to ms] <file.cpuprofile|dir> ...\n");
    process.exit(2);
  }
  for (const file of inputs.flatMap(profileFiles))
    process.stdout.write(`${formatSummary(summarise(file, top, window)).join("\n")}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href)
  main(process.argv.slice(2));
