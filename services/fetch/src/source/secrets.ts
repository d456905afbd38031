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

/** Current values of a source's `row` data, as the data layer last answered. */
export interface DataRowValues {
  /** The value, or undefined while it is not loaded. */
  get(source: string, key: string): string | undefined;
  /** Why a value is not loaded (the last error), for the error a fetch then gets. */
  why(source: string, key: string): string;
}

/** Describes where a data value comes from, for error messages (never includes the value). */
export function describeOrigin(spec: DataSpec): string {
  if (spec.kind === "env") return `env var ${spec.name}`;
  if (spec.kind === "file") return `file ${spec.path}`;
  if (spec.kind === "row") return `field ${spec.field} of the clean ${spec.type} record ${JSON.stringify(spec.key)}`;
  return "a constant in the source file";
}

/**
 * Resolves every data value of `def` from env, files and constants, once at start-up, so a
 * missing secret stops the service before it takes work rather than failing each fetch.
 */
export function resolveData(def: SourceDef, env: NodeJS.ProcessEnv = process.env, rows?: DataRowValues): ResolvedData {
  const values: Record<string, string> = {};
  const origins: Record<string, string> = {};
  const secrets: string[] = [];
  for (const [key, spec] of Object.entries(def.data)) {
    origins[key] = describeOrigin(spec);
    if (spec.kind === "value") {
      values[key] = spec.value;
      continue;
    }
    if (spec.kind === "row") {
      // Read at each use: the data layer's value changes while the source is in use.
      Object.defineProperty(values, key, {
        enumerable: true,
        get: () => {
          const v = rows?.get(def.name, key);
          if (v !== undefined) return v;
          throw new MachinaError(
            "UNAVAILABLE",
            `source ${def.name}: data.${key} (${origins[key]}) is not loaded yet${rows === undefined ? " (no data reader in this process)" : `: ${rows.why(def.name, key)}`}`,
            { retryable: true, details: { source: def.name, data: key, dependency: "data" } },
          );
        },
      });
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

/** Merges data value maps, later ones winning, keeping `row` values live (their getters, not a snapshot). */
export function joinData(...maps: readonly Readonly<Record<string, string>>[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of maps) Object.defineProperties(out, Object.getOwnPropertyDescriptors(m));
  return out;
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
