import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { NATS_URL } from "./nats-env";

export { eventually } from "./eventually";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** One running service process started by a test. */
export interface ServiceProc {
  readonly service: string;
  readonly child: ChildProcess;
  /** Probe port read from its "service started" log line. */
  readonly probePort: number;
  /** Everything it logged so far. */
  output(): string;
  /** SIGTERM and wait for the exit (SIGKILL after 15 s). */
  stop(): Promise<void>;
  /** SIGKILL, as a crash. */
  kill(): Promise<void>;
}

/** A config root for a test: files by relative path under `default/`, plus the example website type. */
export function writeConfig(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), "machina-test-cfg-"));
  mkdirSync(path.join(dir, "default/data/types"), { recursive: true });
  cpSync(path.join(ROOT, "config/default/data/types/website.yaml"), path.join(dir, "default/data/types/website.yaml"));
  for (const [rel, text] of Object.entries(files)) {
    const file = path.join(dir, "default", rel);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
  }
  return dir;
}

/** Options of {@link startServiceProc}. */
export interface ProcOptions {
  configDir: string;
  prefix: string;
  /** Extra environment (MACHINA_* settings, API keys). */
  env?: Record<string, string>;
  /** Default 60 s. */
  readyTimeoutMs?: number;
  /** Node flags before the entry point, e.g. `--cpu-prof` (which NODE_OPTIONS refuses). */
  nodeArgs?: string[];
}

/** Starts `node services/<service>/src/main.ts` as its own process and waits until it is ready. */
export async function startServiceProc(service: string, opts: ProcOptions): Promise<ServiceProc> {
  // The services' young generation as in the image (deploy/docker/Dockerfile says why; invoke
  // keeps V8's default).
  const args = [
    ...(service === "invoke" ? [] : ["--max-semi-space-size=32"]),
    ...(opts.nodeArgs ?? []),
    "--import",
    "tsx",
    `services/${service}/src/main.ts`,
  ];
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: {
      ...process.env,
      MACHINA_CONFIG_DIR: opts.configDir,
      MACHINA_MESH_PREFIX: opts.prefix,
      MACHINA_NATS_URL: NATS_URL,
      MACHINA_HTTP_PORT: "0",
      MACHINA_LOG_LEVEL: "info",
      MACHINA_DATA_CASSANDRA_PORT: process.env.MACHINA_CQL_PORT ?? "19042",
      ...opts.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${service} not ready in time; it logged:\n${out.slice(-3000)}`)),
      opts.readyTimeoutMs ?? 60_000,
    );
    const check = () => {
      const m = /"probePort":(\d+)[^\n]*"msg":"service started"/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout?.on("data", check);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${service} exited with ${code} during start-up:\n${out.slice(-3000)}`));
    });
  });
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const t = setTimeout(() => child.kill("SIGKILL"), 15_000);
    await exited;
    clearTimeout(t);
  };
  return { service, child, probePort: port, output: () => out, stop: () => end("SIGTERM"), kill: () => end("SIGKILL") };
}

/** GET /readyz of a process: its status and what it says it waits for. */
export async function readyz(p: ServiceProc): Promise<{ status: number; waitingFor: Record<string, unknown> }> {
  const r = await fetch(`http://127.0.0.1:${p.probePort}/readyz`);
  const body = (await r.json()) as { waitingFor?: Record<string, unknown> };
  return { status: r.status, waitingFor: body.waitingFor ?? {} };
}

/**
 * Env of the four fetch replicas the quota tests and bench run against one source: one plain,
 * clocks 500 ms ahead and behind, and one whose NATS traffic goes through a slow proxy.
 */
export function skewedFetchReplicas(proxyPort: number): Record<string, string>[] {
  return [
    {},
    { MACHINA_FETCH_FETCH_CLOCK_SKEW_MS: "500" },
    { MACHINA_FETCH_FETCH_CLOCK_SKEW_MS: "-500" },
    { MACHINA_NATS_URL: `nats://127.0.0.1:${proxyPort}` },
  ];
}
