import { createHash } from "node:crypto";
import * as z from "zod";
import { defineKind, describeValue, field, formatDuration } from "@machina/config";
import type { ComponentValue } from "@machina/config";
import { DAY_MS } from "./time-windows";

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
  { policy: Exclude<MergePolicyName, "source_priority"> } | { policy: "source_priority"; sources: string[] };

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
  "seq",
  "bucket",
  "window_start",
  "merged_at",
  "sources",
  "provenance",
] as const;

// Cassandra 5 refuses expirations past 2038-01-19 in its default storage mode, so keep TTLs modest.
const MAX_TTL_MS = 3650 * DAY_MS;
const ORDERED_TYPES = new Set<FieldType>(["int", "bigint", "double", "timestamp"]);
const NUMERIC_TYPES = new Set<FieldType>(["int", "bigint", "double"]);
const DEFAULT_POLICY = "latest_non_null" satisfies MergePolicyName;

const unknownOf = (what: string, known: readonly string[]) => (iss: { input?: unknown }) =>
  iss.input === undefined
    ? "is required"
    : `unknown ${what} ${describeValue(iss.input)} (expected one of ${known.join(", ")})`;

const fieldType = z.enum(FIELD_TYPES, { error: unknownOf("type", FIELD_TYPES) });

const policyName = z.enum(MERGE_POLICIES, { error: unknownOf("policy", MERGE_POLICIES) });

const policyObject = field
  .object({
    policy: policyName.describe("The merge policy"),
    sources: field
      .list(field.name(), { min: 1, emptyHint: "source_priority needs a non-empty list of source names" })
      .optional()
      .describe("source_priority only: fetch sources, most trusted first; a value from an earlier source wins"),
  })
  .superRefine((p, ctx) => {
    if (p.policy !== "source_priority") {
      if (p.sources !== undefined)
        ctx.addIssue({
          code: "custom",
          path: ["sources"],
          message: "only source_priority takes sources",
          input: p.sources,
        });
      return;
    }
    if (p.sources === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["sources"],
        message: "source_priority needs a non-empty list of source names, got nothing",
        input: undefined,
      });
      return;
    }
    const sources = p.sources;
    sources.forEach((s, i) => {
      if (sources.indexOf(s) !== i)
        ctx.addIssue({ code: "custom", path: ["sources", i], message: `source "${s}" is listed twice`, input: s });
    });
  });

const policySpec = z
  .union([policyName, policyObject], {
    error: (iss) => {
      if (iss.code !== "invalid_union") return undefined;
      if (typeof iss.input === "string" || iss.input === undefined) return unknownOf("policy", MERGE_POLICIES)(iss);
      return `expected a policy name or { policy, sources }, got ${describeValue(iss.input)}`;
    },
  })
  .describe("A policy name, or { policy, sources } for source_priority");

const fieldRef = z.string({
  error: (iss) => (iss.input === undefined ? undefined : `expected a field name, got ${describeValue(iss.input)}`),
});

const keySpec = z
  .union(
    [fieldRef, field.list(fieldRef, { min: 1, emptyHint: "expected one or more field names, got an empty list" })],
    {
      error: (iss) =>
        iss.code !== "invalid_union"
          ? undefined
          : iss.input === undefined
            ? "is required"
            : `expected one or more field names, got ${describeValue(iss.input)}`,
    },
  )
  .transform((k) => (typeof k === "string" ? [k] : k));

// A whole-second duration: CQL TTLs and window arithmetic are in seconds.
const seconds = () => field.duration({ min: 1000, wholeSeconds: true });

const typeSchema = field
  .object({
    name: field
      .name()
      .describe(
        "The type's name; its tables are dump_<name> and clean_<name>. The loader takes it from the file name when the file leaves it out",
      ),
    key: keySpec.describe(
      "Key field (or list of key fields, in order) naming one entity; declared, scalar (not json), each listed once",
    ),
    fields: field
      .names(fieldType, { emptyHint: "expected a non-empty mapping of field name to type" })
      .describe(
        `Every field (key fields included) and its type: ${FIELD_TYPES.join(", ")}; the data layer's own columns (${RESERVED_COLUMNS.join(", ")}) are reserved`,
      ),
    merge: z
      // YAML reads an emptied `merge:` as null; it means no policies, as leaving it out does.
      .preprocess((v) => (v === null ? undefined : v), z.record(z.string(), policySpec).optional())
      .optional()
      .describe(
        `How the clean job merges each non-key field from the dump rows: default (for every field without its own policy; default ${DEFAULT_POLICY}) and field names, each a policy (${MERGE_POLICIES.join(", ")}) or { policy, sources }. max and min need int, bigint, double or timestamp fields, sum int, bigint or double; key fields take no policy`,
      ),
    dump_ttl: seconds()
      .superRefine((ms, ctx) => {
        if (ms > MAX_TTL_MS)
          ctx.addIssue({
            code: "custom",
            message: `must be at most ${formatDuration(MAX_TTL_MS)}, got ${formatDuration(ms)} (expirations past 2038 are refused)`,
            input: ms,
          });
      })
      .prefault("30d")
      .describe("How long dump rows (raw answers) are kept, whole seconds, at most 3650d; default 30d"),
    clean_window: seconds()
      .superRefine((ms, ctx) => {
        if (ms > DAY_MS || DAY_MS % ms !== 0)
          ctx.addIssue({
            code: "custom",
            message: `${formatDuration(ms)} does not divide a day (try 15m, 1h, 6h or 1d)`,
            input: ms,
          });
      })
      .prefault("1h")
      .describe("Length of the aligned windows clean rows cover, whole seconds dividing a day; default 1h"),
  })
  .superRefine((d, ctx) => {
    const issue = (path: (string | number)[], message: string) =>
      ctx.addIssue({ code: "custom", path, message, input: undefined });
    const declared = (f: string) => Object.hasOwn(d.fields, f);
    for (const f of Object.keys(d.fields)) {
      if ((RESERVED_COLUMNS as readonly string[]).includes(f)) {
        issue(
          ["fields", f],
          `"${f}" is a column the data layer adds itself (reserved: ${RESERVED_COLUMNS.join(", ")})`,
        );
      }
    }
    d.key.forEach((k, i) => {
      if (!declared(k)) issue(["key", i], `"${k}" is not declared in fields`);
      else if (d.key.indexOf(k) !== i) issue(["key", i], `"${k}" is listed twice`);
      else if (d.fields[k] === "json") issue(["key", i], `"${k}" is a json field; key fields must be scalar`);
    });
    const merge = d.merge ?? {};
    for (const [f, spec] of Object.entries(merge)) {
      if (f === "default") continue;
      if (!declared(f)) issue(["merge", f], `"${f}" is not declared in fields`);
      else if (d.key.includes(f))
        issue(["merge", f], `"${f}" is a key field; key fields are equal in every merged row`);
      else {
        const problem = inapplicable(policyOf(spec), d.fields[f], f);
        if (problem !== null) issue(["merge", f], problem);
      }
    }
    const fallback = policyOf(merge.default ?? DEFAULT_POLICY);
    for (const [f, type] of Object.entries(d.fields)) {
      // A field may be called "default"; its entry under merge is then the default policy itself.
      if (d.key.includes(f) || (f !== "default" && Object.hasOwn(merge, f))) continue;
      const problem = inapplicable(fallback, type, f);
      if (problem !== null) issue(["merge", "default"], `${problem}; give "${f}" its own policy under merge`);
    }
  });

/** `config/<mode>/data/types/<name>.yaml`: an entity type, its dump and clean tables and how its rows merge. */
export const TYPE_KIND = defineKind({
  kind: "data/types",
  doc:
    "An entity type of the data layer: its key and typed fields, how long raw answers (dump rows) are kept, and how the clean job " +
    "merges them per field into clean rows covering aligned windows. The data service creates its tables dump_<name> and clean_<name> " +
    "at start; fields may be added in place, while a changed key or field type needs a new type name (e.g. <name>_v2).",
  example: `name: website
key: [domain]
fields:
  domain: text
  title: text
  visits: bigint
  updated_at: timestamp
merge:
  default: latest_non_null
  visits: max
  title: { policy: source_priority, sources: [sitestats, traffic] }
dump_ttl: 30d
clean_window: 1h
`,
  schema: typeSchema,
});

type PolicySpec = NonNullable<ComponentValue<typeof TYPE_KIND>["merge"]>[string];

function policyOf(spec: PolicySpec): FieldMerge {
  if (typeof spec === "string") return { policy: spec } as FieldMerge;
  return spec.policy === "source_priority"
    ? { policy: spec.policy, sources: [...(spec.sources ?? [])] }
    : { policy: spec.policy };
}

function inapplicable(merge: FieldMerge, type: FieldType, field: string): string | null {
  if ((merge.policy === "max" || merge.policy === "min") && !ORDERED_TYPES.has(type)) {
    return `policy ${merge.policy} needs an int, bigint, double or timestamp field, but "${field}" is ${type}`;
  }
  if (merge.policy === "sum" && !NUMERIC_TYPES.has(type))
    return `policy sum needs an int, bigint or double field, but "${field}" is ${type}`;
  return null;
}

/** Validates a declared entity type (parsed YAML) and resolves its defaults; throws BAD_REQUEST naming origin and field path. */
export function compileTypeDef(raw: unknown, origin: string): TypeDef {
  const d = TYPE_KIND.parse(raw, origin);
  const policies = d.merge ?? {};
  const fallback = policyOf(policies.default ?? DEFAULT_POLICY);
  const merge: Record<string, FieldMerge> = {};
  for (const f of Object.keys(d.fields)) {
    if (!d.key.includes(f)) merge[f] = Object.hasOwn(policies, f) ? policyOf(policies[f]) : fallback;
  }
  return {
    name: d.name,
    key: d.key,
    fields: d.fields,
    merge,
    dumpTtlSeconds: d.dump_ttl / 1000,
    cleanWindowSeconds: d.clean_window / 1000,
    origin,
  };
}

/** Stable SHA-256 of a definition's meaning (origin excluded), used to version schema history. */
export function typeDefHash(def: TypeDef): string {
  return createHash("sha256").update(canonicalTypeDef(def)).digest("hex");
}

/** Canonical JSON of a definition (sorted fields and policies, no origin); equal meaning gives equal text. */
export function canonicalTypeDef(def: TypeDef): string {
  const sorted = <T>(rec: Readonly<Record<string, T>>): Record<string, T> =>
    Object.fromEntries(
      Object.keys(rec)
        .sort()
        .map((k) => [k, rec[k]]),
    );
  return JSON.stringify({
    name: def.name,
    key: def.key,
    fields: sorted(def.fields),
    merge: sorted(def.merge),
    dumpTtlSeconds: def.dumpTtlSeconds,
    cleanWindowSeconds: def.cleanWindowSeconds,
  });
}
