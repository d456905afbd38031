import { execFile } from "node:child_process";
import { homedir } from "node:os";
import path from "node:path";
import { NATS_URL } from "./nats-env";

/** The nats CLI that test/harness/install.sh builds. */
export const NATS_CLI =
  process.env.MACHINA_NATS_CLI ??
  path.join(process.env.MACHINA_CACHE ?? path.join(homedir(), ".cache/machina"), "bin/nats");

/** What one CLI run printed. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real `nats` CLI against the test server, as an operator would. */
export function nats(args: string[], timeoutMs = 20_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(NATS_CLI, ["--server", NATS_URL, ...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err
        ? typeof (err as { code?: unknown }).code === "number"
          ? (err as { code: number }).code
          : 1
        : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** `nats req --raw <subject> <json>` parsed as JSON; throws with the CLI's output if it is not JSON. */
export async function natsReq<T = Record<string, unknown>>(
  subject: string,
  body: unknown,
  timeout = "10s",
): Promise<T> {
  const r = await nats([
    "req",
    "--raw",
    "--timeout",
    timeout,
    subject,
    typeof body === "string" ? body : JSON.stringify(body),
  ]);
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`nats req ${subject} gave no JSON (exit ${r.code}): ${r.stdout} ${r.stderr}`);
  }
}
