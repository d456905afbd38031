// A service as its own process: it becomes ready, refuses bad config at boot with a message that
// names the key and the file, and drains and exits 0 on SIGTERM.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { NATS_URL, emptyConfigDir, uniquePrefix } from "../support/nats-env";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

function startAggregate(env: Record<string, string>) {
  const child = spawn(process.execPath, ["--import", "tsx", "services/aggregate/src/main.ts"], {
    cwd: ROOT,
    env: { ...process.env, MACHINA_NATS_URL: NATS_URL, MACHINA_HTTP_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited, output: () => out };
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("service process", { timeout: 60_000 }, () => {
  it("drains and exits 0 on SIGTERM", async () => {
    const p = startAggregate({ MACHINA_MESH_PREFIX: uniquePrefix("proc"), MACHINA_CONFIG_DIR: emptyConfigDir() });
    await until(() => p.output().includes('"service started"'), 30_000);
    const probePort = Number(/"probePort":(\d+)/.exec(p.output())?.[1]);
    assert.equal((await fetch(`http://127.0.0.1:${probePort}/readyz`)).status, 200);
    p.child.kill("SIGTERM");
    assert.equal(await p.exited, 0);
    assert.match(p.output(), /"service stopped"/);
  });

  it("refuses to start on a config error and names the key and the file", async () => {
    const dir = emptyConfigDir();
    mkdirSync(path.join(dir, "default"), { recursive: true });
    writeFileSync(path.join(dir, "default", "aggregate.yaml"), "nats:\n  urll: nats://x\n");
    const p = startAggregate({ MACHINA_CONFIG_DIR: dir });
    assert.equal(await p.exited, 1);
    assert.match(p.output(), /config\/default\/aggregate\.yaml/);
    assert.match(p.output(), /urll/);
  });

  it("refuses a bad value from the environment and names the variable", async () => {
    const p = startAggregate({ MACHINA_CONFIG_DIR: emptyConfigDir(), MACHINA_AGGREGATE_HTTP_PORT: "not-a-port" });
    assert.equal(await p.exited, 1);
    assert.match(p.output(), /MACHINA_AGGREGATE_HTTP_PORT/);
  });
});
