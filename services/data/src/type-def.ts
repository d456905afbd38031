import { parseDuration } from "@machina/config";
import { createHash } from "node:crypto";
import { MachinaError } from "@machina/wire";

/** Field types an entity type may declare. */
export const FIELD_TYPES = ["text", "int", "bigint", "double", "boolean", "timestamp", "json"] as const;

/** One declared field type. */
export type FieldType = (typeof FIELD_TYPES)[number];

/** Per-field merge policies of the clean job. */
export const MERGE_POLICIES = [
  "latest_non_null",
  "latest",
  "source_priority",
  "max",
  "min",
  "sum",
  "first_non_null",
] as const;

/** One merge policy name. */
export type MergePolicyName = (typeof MERGE_POLICIES)[number];

/** A resolved merge policy of one field. */
export type FieldMerge =
  | { policy: Exclude<MergePolicyName, "source_priority"> }
  | { policy: "source_priority"; sources: string[] };

/** A validated entity type, as the data layer uses it. */
export interface TypeDef {
  /** Type name; tables are `dump_<name>` and `clean_<name>`. */
  readonly name: string;
  /** Key fields, in declared order. */
  readonly key: readonly string[];
  /** Every field (key fields included) and its type, in declared order. */
  readonly fields: Readonly<Record<string, FieldType>>;
  /** Merge policy of every non-key field (defaults resolved). */
  readonly merge: Readonly<Record<string, FieldMerge>>;
  /** Dump rows expire after this many seconds. */
  readonly dumpTtlSeconds: number;
  /** Clean rows cover aligned windows of this many seconds (divides a day). */
  readonly cleanWindowSeconds: number;
  /** File (or other origin) the definition came from, for error messages. */
  readonly origin: string;
}

/** True when `name` is a declared field of `def`; own keys only, so `constructor` or `toString` is not one. */
export function isField(def: Pick<TypeDef, "fields">, name: string): boolean {
  return Object.hasOwn(def.fields, name);
}

/** Columns the data layer adds to every table; fields may not reuse them. */
export const RESERVED_COLUMNS = [
  "day",
  "fetched_at",
  "source",
  "query",
  "task_id",
  "bucket",
  "window_start",
  "merged_at",
  "sources",
  "provenance",
] as const;

const TOKEN = /^[a-z][a-z0-9_]*$/;
// Cassandra caps table names at 48 characters and we prefix "clean_".
const MAX_TYPE_NAME = 42;
// Cassandra 5 refuses expirations past 2038-01-19 in its default storage mode, so keep TTLs modest.
const MAX_TTL_SECONDS = 3650 * 86400;
const DAY_SECONDS = 86400;
const TOP_LEVEL = new Set(["name", "key", "fields", "merge", "dump_ttl", "clean_window"]);
const ORDERED_TYPES = new Set<FieldType>(["int", "bigint", "double", "timestamp"]);
const NUMERIC_TYPES = new Set<FieldType>(["int", "bigint", "double"]);

/** Validates a declared entity type (parsed YAML) and resolves its defaults; throws BAD_REQUEST naming origin and field path. */
export function compileTypeDef(raw: unknown, origin: string): TypeDef {
  const fail = (path: string, problem: string): never => {
    throw new MachinaError("BAD_REQUEST", `${origin}: ${path}: ${problem}`, { details: { origin, path } });
  };
  if (!isPlainObject(raw)) fail("(root)", `expected a mapping with name, key and fields, got ${describe(raw)}`);
  const doc = raw as Record<string, unknown>;
  for (const k of Object.keys(doc)) {
    if (!TOP_LEVEL.has(k)) fail(k, `unknown setting (expected one of ${[...TOP_LEVEL].join(", ")})`);
  }

  const name = doc.name;
  if (typeof name !== "string" || !TOKEN.test(name)) {
    fail("name", `${describe(name)} is not a type name (lowercase letter, then lowercase letters, digits or '_')`);
  }
  const typeName = name as string;
  if (typeName.length > MAX_TYPE_NAME) fail("name", `"${typeName}" is longer than ${MAX_TYPE_NAME} characters`);

  if (!isPlainObject(doc.fields) || Object.keys(doc.fields as object).length === 0) {
    fail("fields", `expected a non-empty mapping of field name to type, got ${describe(doc.fields)}`);
  }
  const fields: Record<string, FieldType> = {};
  for (const [field, type] of Object.entries(doc.fields as Record<string, unknown>)) {
    const path = `fields.${field}`;
    if (!TOKEN.test(field)) fail(path, `"${field}" is not a field name (lowercase letter, then lowercase letters, digits or '_')`);
    if ((RESERVED_COLUMNS as readonly string[]).includes(field)) {
      fail(path, `"${field}" is a column the data layer adds itself (reserved: ${RESERVED_COLUMNS.join(", ")})`);
    }
    if (typeof type !== "string" || !(FIELD_TYPES as readonly string[]).includes(type)) {
      const shown = typeof type === "string" ? `"${type}"` : describe(type);
      fail(path, `unknown type ${shown} (expected one of ${FIELD_TYPES.join(", ")})`);
    }
    fields[field] = type as FieldType;
  }

  const keyRaw = typeof doc.key === "string" ? [doc.key] : doc.key;
  if (!Array.isArray(keyRaw) || keyRaw.length === 0) {
    fail("key", `expected one or more field names, got ${describe(doc.key)}`);
  }
  const key: string[] = [];
  (keyRaw as unknown[]).forEach((k, i) => {
    const path = `key[${i}]`;
    if (typeof k !== "string") return fail(path, `expected a field name, got ${describe(k)}`);
    if (!Object.hasOwn(fields, k)) return fail(path, `"${k}" is not declared in fields`);
    if (key.includes(k)) return fail(path, `"${k}" is listed twice`);
    if (fields[k] === "json") return fail(path, `"${k}" is a json field; key fields must be scalar`);
    key.push(k);
  });

  const merge = compileMerge(doc.merge, fields, key, fail);
  const dumpTtlSeconds = doc.dump_ttl === undefined ? 30 * DAY_SECONDS : durationSeconds(doc.dump_ttl, "dump_ttl", fail);
  if (dumpTtlSeconds > MAX_TTL_SECONDS) fail("dump_ttl", `must be at most 3650d (expirations past 2038 are refused)`);
  const cleanWindowSeconds =
    doc.clean_window === undefined ? 3600 : durationSeconds(doc.clean_window, "clean_window", fail);
  if (cleanWindowSeconds > DAY_SECONDS || DAY_SECONDS % cleanWindowSeconds !== 0) {
    fail("clean_window", `${String(doc.clean_window)} does not divide a day (try 15m, 1h, 6h or 1d)`);
  }
  return { name: typeName, key, fields, merge, dumpTtlSeconds, cleanWindowSeconds, origin };
}

type Fail = (path: string, problem: string) => never;

function compileMerge(
  raw: unknown,
  fields: Record<string, FieldType>,
  key: string[],
  fail: Fail,
): Record<string, FieldMerge> {
  if (raw !== undefined && raw !== null && !isPlainObject(raw)) {
    fail("merge", `expected a mapping of field name to policy, got ${describe(raw)}`);
  }
  const spec = (raw ?? {}) as Record<string, unknown>;
  const defaultPolicy: FieldMerge =
    spec.default === undefined ? { policy: "latest_non_null" } : parsePolicy(spec.default, "merge.default", fail);
  const merge: Record<string, FieldMerge> = {};
  for (const [field, value] of Object.entries(spec)) {
    if (field === "default") continue;
    const path = `merge.${field}`;
    if (!Object.hasOwn(fields, field)) fail(path, `"${field}" is not declared in fields`);
    if (key.includes(field)) fail(path, `"${field}" is a key field; key fields are equal in every merged row`);
    merge[field] = parsePolicy(value, path, fail);
    checkApplies(merge[field], fields[field], field, path, fail);
  }
  for (const field of Object.keys(fields)) {
    if (key.includes(field) || Object.hasOwn(merge, field)) continue;
    checkApplies(defaultPolicy, fields[field], field, "merge.default", fail, `; give "${field}" its own policy under merge`);
    merge[field] = defaultPolicy;
  }
  return merge;
}

function parsePolicy(raw: unknown, path: string, fail: Fail): FieldMerge {
  const obj: Record<string, unknown> = typeof raw === "string" ? { policy: raw } : isPlainObject(raw) ? raw : {};
  if (typeof raw !== "string" && !isPlainObject(raw)) {
    fail(path, `expected a policy name or { policy, sources }, got ${describe(raw)}`);
  }
  for (const k of Object.keys(obj)) {
    if (k !== "policy" && k !== "sources") fail(`${path}.${k}`, `unknown setting (expected policy or sources)`);
  }
  const policy = obj.policy;
  if (typeof policy !== "string" || !(MERGE_POLICIES as readonly string[]).includes(policy)) {
    const shown = typeof policy === "string" ? `"${policy}"` : describe(policy);
    fail(typeof raw === "string" ? path : `${path}.policy`, `unknown policy ${shown} (expected one of ${MERGE_POLICIES.join(", ")})`);
  }
  if (policy === "source_priority") {
    const sources = obj.sources;
    if (!Array.isArray(sources) || sources.length === 0 || !sources.every((s) => typeof s === "string" && s !== "")) {
      fail(`${path}.sources`, `source_priority needs a non-empty list of source names, got ${describe(sources)}`);
    }
    const list = sources as string[];
    if (new Set(list).size !== list.length) fail(`${path}.sources`, `a source is listed twice`);
    return { policy: "source_priority", sources: [...list] };
  }
  if (obj.sources !== undefined) fail(`${path}.sources`, `only source_priority takes sources`);
  return { policy: policy as Exclude<MergePolicyName, "source_priority"> };
}

function checkApplies(merge: FieldMerge, type: FieldType, field: string, path: string, fail: Fail, hint = ""): void {
  if ((merge.policy === "max" || merge.policy === "min") && !ORDERED_TYPES.has(type)) {
    fail(path, `policy ${merge.policy} needs an int, bigint, double or timestamp field, but "${field}" is ${type}${hint}`);
  }
  if (merge.policy === "sum" && !NUMERIC_TYPES.has(type)) {
    fail(path, `policy sum needs an int, bigint or double field, but "${field}" is ${type}${hint}`);
  }
}

// TTLs and windows are whole seconds in CQL; a unit is required so a bare number is never guessed at.
function durationSeconds(raw: unknown, path: string, fail: Fail): number {
  const ms = typeof raw === "string" ? parseDuration(raw) : null;
  if (ms === null || ms < 1000 || ms % 1000 !== 0) fail(path, `${describe(raw)} is not a positive whole-second duration (like 90s, 15m, 1h, 7d)`);
  return ms / 1000;
}

/** Stable SHA-256 of a definition's meaning (origin excluded), used to version schema history. */
export function typeDefHash(def: TypeDef): string {
  return createHash("sha256").update(canonicalTypeDef(def)).digest("hex");
}

/** Canonical JSON of a definition (sorted fields and policies, no origin); equal meaning gives equal text. */
export function canonicalTypeDef(def: TypeDef): string {
  const sorted = <T>(rec: Readonly<Record<string, T>>): Record<string, T> =>
    Object.fromEntries(Object.keys(rec).sort().map((k) => [k, rec[k]]));
  return JSON.stringify({
    name: def.name,
    key: def.key,
    fields: sorted(def.fields),
    merge: sorted(def.merge),
    dumpTtlSeconds: def.dumpTtlSeconds,
    cleanWindowSeconds: def.cleanWindowSeconds,
  });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return typeof v === "string" ? `"${v}"` : `${typeof v} ${String(v)}`;
}
