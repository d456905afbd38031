import { readFileSync } from "node:fs";
import { MachinaError } from "@machina/wire";
import type { DataSpec, SourceDef } from "./source-def";
import { resolvePool, type ResolvedCredential } from "./pool-secrets";

/** A source's data values after resolution, with where each came from (never the value). */
export interface ResolvedData {
  readonly source: string;
  readonly values: Readonly<Record<string, string>>;
  /** Human description of each value's origin, e.g. `env var SITESTATS_API_KEY`. */
  readonly origins: Readonly<Record<string, string>>;
  /** Values read from env or files; scrubbed from any text that might reach a log or a reply. */
  readonly secrets: readonly string[];
  /** A pooled source's credentials (their secrets are in `secrets` too); empty or absent without a pool. */
  readonly credentials?: readonly ResolvedCredential[];
}

/** Describes where a data value comes from, for error messages (never includes the value). */
export function describeOrigin(spec: DataSpec): string {
  if (spec.kind === "env") return `env var ${spec.name}`;
  if (spec.kind === "file") return `file ${spec.path}`;
  return "a constant in the source file";
}

/**
 * Resolves every data value of `def` from env, files and constants, once at start-up, so a
 * missing secret stops the service before it takes work rather than failing each fetch.
 */
export function resolveData(def: SourceDef, env: NodeJS.ProcessEnv = process.env): ResolvedData {
  const values: Record<string, string> = {};
  const origins: Record<string, string> = {};
  const secrets: string[] = [];
  for (const [key, spec] of Object.entries(def.data)) {
    origins[key] = describeOrigin(spec);
    if (spec.kind === "value") {
      values[key] = spec.value;
      continue;
    }
    const value = spec.kind === "env" ? readEnv(def, key, spec.name, env) : readSecretFile(def, key, spec.path);
    values[key] = value;
    secrets.push(value);
  }
  const credentials = resolvePool(def, env);
  for (const c of credentials) secrets.push(...c.secrets);
  return { source: def.name, values, origins, secrets, credentials };
}

function readEnv(def: SourceDef, key: string, name: string, env: NodeJS.ProcessEnv): string {
  const v = env[name];
  if (v === undefined || v === "") {
    throw new MachinaError(
      "UNAVAILABLE",
      `source ${def.name} (${def.origin}): data.${key} reads env var ${name}, which is ${v === undefined ? "not set" : "empty"}; set it (e.g. from the source's Kubernetes Secret) or remove the source`,
      { retryable: false, details: { source: def.name, data: key, env: name } },
    );
  }
  return v;
}

function readSecretFile(def: SourceDef, key: string, path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "read error";
    throw new MachinaError(
      "UNAVAILABLE",
      `source ${def.name} (${def.origin}): data.${key} reads file ${path}, which cannot be read (${code}); mount the secret there or fix the path`,
      { retryable: false, details: { source: def.name, data: key, file: path } },
    );
  }
  // Secret files are usually written with a trailing newline that is not part of the key.
  const value = text.replace(/\r?\n$/, "");
  if (value === "") {
    throw new MachinaError(
      "UNAVAILABLE",
      `source ${def.name} (${def.origin}): data.${key} reads file ${path}, which is empty; write the value into it`,
      {
        retryable: false,
        details: { source: def.name, data: key, file: path },
      },
    );
  }
  return value;
}

/** Replaces every secret occurring in `text` with `***`. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) {
    // Very short secrets would mangle ordinary text and are not worth hiding from it.
    if (s.length >= 4) out = out.split(s).join("***");
  }
  return out;
}
