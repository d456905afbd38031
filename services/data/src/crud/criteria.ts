import type { StoreName } from "@machina/subjects";
import { MachinaError } from "@machina/wire";
import { isField, keyValues, toCql, toPlain, type CqlValue, type TypeDef } from "../schema";
import { filterableMeta, valueFieldsOf, type PlainRow } from "../store";

/** Criteria turned into the entity's partition key and an equality test on the other named columns. */
export interface CompiledCriteria {
  readonly key: Record<string, CqlValue>;
  readonly matches: (row: PlainRow) => boolean;
}

/**
 * Checks read or count criteria: the full key (it names the partitions to read) plus equality
 * filters on declared fields and, for dump, its filterable meta columns.
 */
export function compileCriteria(def: TypeDef, store: StoreName, criteria: Record<string, unknown>): CompiledCriteria {
  if (typeof criteria !== "object" || criteria === null || Array.isArray(criteria)) {
    throw new MachinaError(
      "BAD_REQUEST",
      `type ${def.name}: criteria must name the key (${def.key.join(", ")}); ${usableCriteria(def, store)}`,
      { details: { type: def.name, key: def.key, filters: filterColumns(def, store) } },
    );
  }
  const key = keyOf(def, criteria, store);
  const meta = filterableMeta(store);
  const filters: Array<[string, string]> = [];
  for (const [field, value] of Object.entries(criteria)) {
    if (def.key.includes(field)) continue;
    if (isField(def, field)) {
      const v = toCql(def.fields[field], value, { type: def.name, field });
      filters.push([field, JSON.stringify(toPlain(def.fields[field], v))]);
    } else if (meta.includes(field)) {
      filters.push([field, JSON.stringify(value)]);
    } else {
      throw new MachinaError(
        "BAD_REQUEST",
        `type ${def.name}: cannot filter ${store} rows on "${field}" (fields: ${[...Object.keys(def.fields), ...meta].join(", ")})`,
        { details: { type: def.name, field } },
      );
    }
  }
  return { key, matches: (row) => filters.every(([f, want]) => JSON.stringify(row[f] ?? null) === want) };
}

/**
 * The entity key named by `input`, coerced; BAD_REQUEST naming the missing key fields otherwise.
 * With `store`, `input` is read criteria and the refusal also lists the filter columns.
 */
export function keyOf(def: TypeDef, input: Record<string, unknown>, store?: StoreName): Record<string, CqlValue> {
  const given = (f: string) =>
    input !== null && typeof input === "object" && Object.hasOwn(input, f) ? input[f] : undefined;
  const missing = def.key.filter((f) => given(f) === undefined || given(f) === null);
  if (missing.length > 0) {
    // Without the whole partition key the only plan is a scan of every partition (ALLOW FILTERING),
    // which this layer never runs: say what a request can name instead.
    const usable =
      store === undefined
        ? `a key names ${def.key.join(", ")}; list the entities with data.keys.${def.name}`
        : usableCriteria(def, store);
    throw new MachinaError(
      "BAD_REQUEST",
      `type ${def.name}: criteria must name the full key; missing ${missing.join(", ")}. ${usable}`,
      {
        details: {
          type: def.name,
          missing,
          key: def.key,
          ...(store === undefined ? {} : { filters: filterColumns(def, store) }),
        },
      },
    );
  }
  return keyValues(def, input);
}

/** NOT_FOUND unless `store` is dump or clean. */
export function checkStore(store: string): void {
  if (store !== "dump" && store !== "clean") {
    throw new MachinaError("NOT_FOUND", `unknown store "${store}" (expected dump or clean)`, { details: { store } });
  }
}

/** An integer option within [min, max], `dflt` when absent; BAD_REQUEST naming it otherwise. */
export function intOption(v: unknown, name: string, dflt: number, min: number, max: number, type: string): number {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new MachinaError(
      "BAD_REQUEST",
      `type ${type}: ${name} must be an integer from ${min} to ${max}, got ${String(v)}`,
      {
        details: { type, [name]: v },
      },
    );
  }
  return v;
}

// Columns criteria may name besides the key: equality filters applied to the entity's rows.
function filterColumns(def: TypeDef, store: StoreName): string[] {
  return [...valueFieldsOf(def), ...filterableMeta(store)];
}

function usableCriteria(def: TypeDef, store: StoreName): string {
  const filters = filterColumns(def, store);
  return (
    `Criteria without the whole key would scan every partition, so they are refused: ` +
    `name ${def.key.join(", ")} (the key, all required)` +
    (filters.length > 0 ? `, optionally with equality filters on ${filters.join(", ")}` : "") +
    `; list the entities with data.keys.${def.name}`
  );
}
