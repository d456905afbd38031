// Process helpers of the pipeline bench: CPU seconds from /proc, the servers' pids from the
// harness pid files, and the fake API in a process whose pid we know.
import { spawn, execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** User + system CPU seconds of process `pid` (every thread), or undefined when it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the parenthesised command name (which may hold spaces): state is field 3.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / clockTicks();
  } catch {
    return undefined;
  }
}

/** The pid a harness script recorded in $MACHINA_STATE/run/<name>.pid, if that process runs. */
export function harnessPid(name: "nats" | "cassandra"): number | undefined {
  const state = process.env.MACHINA_STATE;
  if (!state) return undefined;
  try {
    const pid = Number(readFileSync(path.join(state, "run", `${name}.pid`), "utf8").trim());
    return Number.isInteger(pid) && cpuSeconds(pid) !== undefined ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** CPU seconds of named processes between two points in time. */
export class CpuMeter {
  private readonly start = new Map<string, number>();
  private readonly pids = new Map<string, number | "self">();

  constructor(pids: Record<string, number | "self" | undefined>) {
    for (const [name, pid] of Object.entries(pids)) if (pid !== undefined) this.pids.set(name, pid);
    for (const [name, pid] of this.pids) this.start.set(name, read(pid) ?? 0);
  }

  /** Seconds used by each process since the meter was made (missing when a process is gone). */
  used(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [name, pid] of this.pids) {
      const now = read(pid);
      if (now !== undefined) out.set(name, now - (this.start.get(name) ?? 0));
    }
    return out;
  }
}

function read(pid: number | "self"): number | undefined {
  if (pid === "self") {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  }
  return cpuSeconds(pid);
}

/** The fake API in its own process, with its pid (test/support/fake-api-proc.ts does not expose it). */
export interface BenchApi {
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/** Starts test/fixtures/fake-api/main.ts with `keys` (FAKE_API_KEYS syntax) on a free port. */
export async function startBenchApi(keys: string): Promise<BenchApi> {
  const child = spawn(process.execPath, ["--import", "tsx", "test/fixtures/fake-api/main.ts"], {
    cwd: ROOT,
    env: { ...process.env, FAKE_API_PORT: "0", FAKE_API_KEYS: keys },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fake API did not start: ${out}`)), 30_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout.off("data", onData);
        child.stderr.off("data", onData);
        resolve(m[1]);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code) => reject(new Error(`fake API exited with ${code}: ${out}`)));
  });
  // Keep the pipes drained.
  child.stdout.resume();
  child.stderr.resume();
  return {
    url,
    pid: child.pid ?? -1,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}
