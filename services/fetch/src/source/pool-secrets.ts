import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { MachinaError } from "@machina/wire";
import type { PoolSecretSpec, PoolSpec } from "./pool-def";

/** One credential of a pool after its secrets were read. */
export interface ResolvedCredential {
  /** Stable id: the credential's name, or `k` + 12 hex digits of a hash for a listed one. Never the secret. */
  readonly id: string;
  /** The pool's data names mapped to this credential's values. */
  readonly values: Readonly<Record<string, string>>;
  /** Where each value came from, e.g. `env var KEY_2`, for messages (never the value). */
  readonly origins: Readonly<Record<string, string>>;
  /** The values, to scrub from any text that may reach a log or a reply. */
  readonly secrets: readonly string[];
}

interface Owner {
  readonly name: string;
  readonly origin: string;
  readonly pool: PoolSpec | null;
}

/**
 * The id of a listed credential: a short hash of the source name and the value. Stable across
 * restarts and reorderings of the file, and no help in guessing a key.
 */
export function credentialHash(source: string, value: string): string {
  return `k${createHash("sha256").update(`${source}\n${value}`).digest("hex").slice(0, 12)}`;
}

/** Reads every credential of the pool of `def` (none without a pool); throws UNAVAILABLE naming what is missing. */
export function resolvePool(def: Owner, env: NodeJS.ProcessEnv): ResolvedCredential[] {
  const pool = def.pool;
  if (pool === null) return [];
  const fail = (what: string, details: Record<string, unknown>) =>
    new MachinaError("UNAVAILABLE", `source ${def.name} (${def.origin}): ${what}`, {
      retryable: false,
      details: { source: def.name, ...details },
    });
  const out: ResolvedCredential[] = [];
  for (const c of pool.credentials) {
    const values: Record<string, string> = {};
    const origins: Record<string, string> = {};
    for (const [key, spec] of Object.entries(c.data)) {
      origins[key] = `${originOf(spec)} (credential ${c.name})`;
      values[key] = readSecret(spec, `pool.credentials.${c.name}.${key}`, env, fail);
    }
    out.push({ id: c.name, values, origins, secrets: Object.values(values) });
  }
  for (const list of pool.lists) {
    let text: string;
    try {
      text = readFileSync(list.file, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "read error";
      throw fail(`pool.lists reads file ${list.file}, which cannot be read (${code}); mount it there or fix the path`, {
        file: list.file,
      });
    }
    const before = out.length;
    text.split(/\r?\n/).forEach((raw, i) => {
      const value = raw.trim();
      if (value === "" || value.startsWith("#")) return;
      const id = credentialHash(def.name, value);
      const origin = `line ${i + 1} of file ${list.file} (credential ${id})`;
      out.push({ id, values: { [list.data]: value }, origins: { [list.data]: origin }, secrets: [value] });
    });
    if (out.length === before)
      throw fail(`pool.lists file ${list.file} lists no credential; write one per line`, { file: list.file });
  }
  // One secret twice would have two sets of windows spend one upstream quota.
  const seen = new Map<string, ResolvedCredential>();
  for (const c of out) {
    const same = JSON.stringify(Object.entries(c.values).sort());
    const first = seen.get(same);
    if (first !== undefined)
      throw fail(`pool credentials ${first.id} and ${c.id} hold the same secret; remove one`, {
        credentials: [first.id, c.id],
      });
    seen.set(same, c);
  }
  return out;
}

function originOf(spec: PoolSecretSpec): string {
  return spec.kind === "env" ? `env var ${spec.name}` : `file ${spec.path}`;
}

function readSecret(
  spec: PoolSecretSpec,
  field: string,
  env: NodeJS.ProcessEnv,
  fail: (what: string, details: Record<string, unknown>) => MachinaError,
): string {
  if (spec.kind === "env") {
    const v = env[spec.name];
    if (v === undefined || v === "")
      throw fail(
        `${field} reads env var ${spec.name}, which is ${v === undefined ? "not set" : "empty"}; set it or remove the credential`,
        { env: spec.name },
      );
    return v;
  }
  let text: string;
  try {
    text = readFileSync(spec.path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "read error";
    throw fail(
      `${field} reads file ${spec.path}, which cannot be read (${code}); mount the secret there or fix the path`,
      {
        file: spec.path,
      },
    );
  }
  // Secret files are usually written with a trailing newline that is not part of the key.
  const value = text.replace(/\r?\n$/, "");
  if (value === "")
    throw fail(`${field} reads file ${spec.path}, which is empty; write the value into it`, { file: spec.path });
  return value;
}
