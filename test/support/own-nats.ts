import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import path from "node:path";

/** The nats-server the harness builds (test/harness/install.sh nats). */
export const NATS_SERVER_BIN = path.join(
  process.env.MACHINA_CACHE ?? path.join(homedir(), ".cache/machina"),
  "bin/nats-server",
);

/** A nats-server a test started for itself (own config, port and store), not the shared one. */
export interface OwnNats {
  /** `nats://127.0.0.1:<port>` (or `tls://…` when the config turns TLS on). */
  readonly url: string;
  readonly port: number;
  /** Everything the server logged so far. */
  log(): string;
  /** SIGTERM, wait for the exit, remove the store. */
  stop(): Promise<void>;
}

/** Options of {@link startOwnNats}. */
export interface OwnNatsOptions {
  /** Config text appended after listen and JetStream settings (authorization, tls…). */
  extra?: string;
  /** Environment of the server (the `$VAR` references of `extra`). */
  env?: Record<string, string>;
  /** URL scheme clients use. Default `nats`. */
  scheme?: string;
}

/**
 * Starts nats-server with JetStream on a free loopback port (`port: -1`, read back from its log),
 * configured like test/harness/nats.sh plus `extra`; resolves once it listens.
 */
export async function startOwnNats(opts: OwnNatsOptions = {}): Promise<OwnNats> {
  const dir = mkdtempSync(path.join(tmpdir(), "machina-own-nats-"));
  const conf = path.join(dir, "nats.conf");
  writeFileSync(
    conf,
    [
      'host: "127.0.0.1"',
      "port: -1",
      `jetstream { store_dir: ${JSON.stringify(path.join(dir, "js"))} }`,
      opts.extra ?? "",
      "",
    ].join("\n"),
  );
  const child = spawn(NATS_SERVER_BIN, ["-c", conf], {
    env: { PATH: process.env.PATH, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nats-server did not start:\n${out}`)), 20_000);
    const check = () => {
      const m = /Listening for client connections on [^\s:]+:(\d+)/.exec(out);
      if (m && /Server is ready/.test(out)) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout.on("data", check);
    child.stderr.on("data", check);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited with ${code}:\n${out}`));
    });
  });
  return {
    url: `${opts.scheme ?? "nats"}://127.0.0.1:${port}`,
    port,
    log: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
