import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { FakeApiStats } from "../fixtures/fake-api/stats";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** The fake API in a process of its own, so its arrival times are not skewed by a busy test process. */
export interface FakeApiProc {
  readonly url: string;
  /** Its process id (benches read its CPU time). */
  readonly pid: number;
  stats(): Promise<FakeApiStats>;
  stop(): Promise<void>;
  /** What it printed. */
  output(): string;
}

/** Starts test/fixtures/fake-api/main.ts with `keys` (FAKE_API_KEYS syntax) on a free port. */
export async function startFakeApiProc(keys: string): Promise<FakeApiProc> {
  const child = spawn(process.execPath, ["--import", "tsx", "test/fixtures/fake-api/main.ts"], {
    cwd: ROOT,
    env: { ...process.env, FAKE_API_PORT: "0", FAKE_API_KEYS: keys },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let url0 = false;
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fake API did not start: ${out}`)), 30_000);
    const onData = (d: Buffer) => {
      if (url0) return;
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        url0 = true;
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code) => reject(new Error(`fake API exited with ${code}: ${out}`)));
  });
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  return {
    output: () => out,
    url,
    pid: child.pid ?? -1,
    stats: async () => (await (await fetch(`${url}/_stats`)).json()) as FakeApiStats,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}
