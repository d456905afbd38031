import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { CORE_SCHEMA, load as loadYaml } from "js-yaml";
import { isPlainObject } from "@machina/protos";
import { parseConfigFile } from "./config-files";
import { envName, leafPaths, screamingSnake, setPath } from "./env-names";
import { resolveConfigSource } from "./process-config";
import type { ConfigSourceOptions } from "./process-config";

/** One declared component (a source, an entity type, a trigger…), merged from its layers. */
export interface ComponentDoc {
  /** File base name, e.g. `sitestats` for `sitestats.yaml`. */
  name: string;
  /** Files (and env vars) that contributed, lowest precedence first; used in error messages. */
  origins: string[];
  /** The merged document, before the component's own validation. */
  doc: Record<string, unknown>;
}

const ORDER: Record<string, number> = { ".xml": 0, ".json": 1, ".yaml": 2, ".yml": 2 };

/**
 * Loads every component of a kind, e.g. `fetch/sources`: `config/default/<kind>/*` deep-merged
 * under `config/<mode>/<kind>/*` (YAML over JSON over XML per name), then env overrides named
 * `MACHINA_<SERVICE>_<COMPONENT_TYPE>_<NAME>_<KEY>` (e.g. `MACHINA_FETCH_SOURCES_SITESTATS_MANAGER_BASE_URL`).
 */
export function loadComponents(kind: string, opts: ConfigSourceOptions = {}): ComponentDoc[] {
  const { configDir, mode, env } = resolveConfigSource(opts);
  const folders = mode === "default" ? ["default"] : ["default", mode];
  const byName = new Map<string, ComponentDoc>();
  for (const folder of folders) {
    const dir = path.join(configDir, folder, kind);
    if (!existsSync(dir)) continue;
    const files = readdirSync(dir)
      .filter((f) => path.extname(f) in ORDER)
      .sort((a, b) => ORDER[path.extname(a)] - ORDER[path.extname(b)] || a.localeCompare(b));
    for (const f of files) {
      const name = path.basename(f, path.extname(f));
      const origin = path.join("config", folder, kind, f);
      const data = parseConfigFile(path.join(dir, f), origin);
      const doc = byName.get(name) ?? { name, origins: [], doc: {} };
      doc.doc = deepMerge(doc.doc, data);
      doc.origins.push(origin);
      byName.set(name, doc);
    }
  }
  const prefix = ["MACHINA", ...kind.split("/").map(screamingSnake)].join("_");
  for (const c of byName.values()) {
    for (const leaf of leafPaths(c.doc)) {
      const name = envName(`${prefix}_${screamingSnake(c.name)}`, leaf);
      const raw = env[name];
      if (raw === undefined) continue;
      setPath(c.doc, leaf, parseScalar(raw));
      c.origins.push(`env ${name}`);
    }
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

function parseScalar(raw: string): unknown {
  let v: unknown;
  try {
    v = loadYaml(raw, { schema: CORE_SCHEMA });
  } catch {
    return raw;
  }
  // Take YAML's reading only where it keeps the text's meaning: `10`, `true`, `null`, `'quoted'`,
  // `[a, b]`. Otherwise (`#alerts` is a comment, `a #b` loses `#b`, `k: v` is a mapping) keep the raw text.
  if (typeof v === "number" || typeof v === "boolean") return v;
  if (v === null) return /^\s*(~|null|Null|NULL)\s*$/.test(raw) ? null : raw;
  if (typeof v === "string") return v === raw.trim() || /^\s*(['"])[\s\S]*\1\s*$/.test(raw) ? v : raw;
  if (Array.isArray(v) && /^\s*\[/.test(raw)) return v;
  return raw;
}

/** Deep merge where `over` wins; arrays are replaced, not concatenated. */
export function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const prev = Object.hasOwn(out, k) ? out[k] : undefined;
    // Defined, not assigned: a YAML key `__proto__` must stay a key (for validation to name it)
    // instead of replacing the prototype of the merged document.
    Object.defineProperty(out, k, {
      value: isPlainObject(v) && isPlainObject(prev) ? deepMerge(prev, v) : v,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}
