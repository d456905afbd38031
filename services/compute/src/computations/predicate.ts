import * as z from "zod";
import { field } from "@machina/config";
import { describeValue, type JsonObject, type JsonValue } from "@machina/protos";
import { MachinaError } from "@machina/wire";

/** The operators of a where condition, in the order the docs list them. */
export const WHERE_OPS = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "prefix", "exists"] as const;

/** One operator of a where condition. */
export type WhereOp = (typeof WHERE_OPS)[number];

/** A value a condition compares with. */
type Scalar = string | number | boolean;

/** The operators of one field, all of which must hold. */
export type WhereOps = Partial<{
  eq: Scalar;
  ne: Scalar;
  gt: string | number;
  gte: string | number;
  lt: string | number;
  lte: string | number;
  in: Scalar[];
  nin: Scalar[];
  contains: Scalar;
  prefix: string;
  exists: boolean;
}>;

/** A parsed where filter: field → a value it must equal, or its operators. */
export type Where = Record<string, Scalar | WhereOps>;

const scalar = () =>
  z.union([z.string(), z.number(), z.boolean()], {
    error: (iss) => `expected a string, number or boolean, got ${describeValue(iss.input)}`,
  });
const ordered = () =>
  z.union([z.number(), z.string()], {
    error: (iss) => `expected a number or a string, got ${describeValue(iss.input)}`,
  });

const OPS_SCHEMA = field
  .object({
    eq: scalar().optional().describe("equal to"),
    ne: scalar().optional().describe("not equal to (a missing value is not equal)"),
    gt: ordered().optional().describe("greater than"),
    gte: ordered().optional().describe("greater than or equal to"),
    lt: ordered().optional().describe("less than"),
    lte: ordered().optional().describe("less than or equal to"),
    in: field.list(scalar(), { min: 1, emptyHint: "needs at least one value" }).optional().describe("one of"),
    nin: field.list(scalar()).optional().describe("none of (a missing value is none of them)"),
    contains: scalar().optional().describe("a substring of a text field, or an element of a json list"),
    prefix: z.string().optional().describe("a text field starting with"),
    exists: field.flag().optional().describe("true: the field has a value; false: it is missing (null)"),
  })
  .superRefine((ops, ctx) => {
    if (Object.keys(ops).length === 0)
      ctx.addIssue({ code: "custom", message: `give at least one operator: ${WHERE_OPS.join(", ")}`, input: ops });
  });

/**
 * The `where` arg of an entity-wide computation: `{field: value}` (equality) or `{field: {op:
 * value}}`; a bad one reads `args.where.<field>.<op>: …`, an unknown op names the nearest.
 */
export function whereArg() {
  return field
    .names(
      z.union([z.string(), z.number(), z.boolean(), OPS_SCHEMA], {
        error: (iss) =>
          `expected a value to equal (string, number or boolean) or a mapping of operators (${WHERE_OPS.join(", ")}), got ${describeValue(iss.input)}`,
      }),
    )
    .describe(
      `Filters, all of which must hold: {"<field>": value} keeps records whose field equals the value; ` +
        `{"<field>": {"<op>": value}} applies operators: ${WHERE_OPS.join(", ")} (in/nin take a list, ` +
        `contains a substring of a text or an element of a json list, prefix a text's start, exists true/false). ` +
        `A missing (null) value matches only ne, nin and exists: false`,
    );
}

/** The fields a where filter names, as [arg path, field] pairs for checkFields. */
export function whereFields(where: Where | undefined): [string, string][] {
  return Object.keys(where ?? {}).map((f): [string, string] => [`args.where.${f}`, f]);
}

/** A compiled filter: true when a record passes every condition. */
export type RecordTest = (record: JsonObject) => boolean;

// How a field's values compare: the declared type decides which operands make sense.
type Kind = "text" | "number" | "boolean" | "timestamp" | "json";

const KIND_OF: Record<string, Kind> = {
  text: "text",
  int: "number",
  bigint: "number",
  double: "number",
  boolean: "boolean",
  timestamp: "timestamp",
  json: "json",
};

const OPS_OF: Record<Kind, ReadonlySet<WhereOp>> = {
  text: new Set(WHERE_OPS),
  number: new Set(["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "exists"]),
  boolean: new Set(["eq", "ne", "in", "nin", "exists"]),
  timestamp: new Set(["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "exists"]),
  json: new Set(WHERE_OPS),
};

const isOp = (op: string): op is WhereOp => (WHERE_OPS as readonly string[]).includes(op);

/**
 * Compiles a parsed where filter over a type's declared fields (name → field type) into one
 * function, checking each operand against its field once here instead of per record. A field the
 * type lacks, an op its type has no meaning for, or an operand of the wrong type is BAD_REQUEST
 * `<origin>: args.where.<field>[.<op>]: …`. Timestamps compare as instants (ISO text or epoch ms);
 * a missing (null) value fails every condition but ne, nin and exists: false.
 */
export function compileWhere(
  origin: string,
  type: string,
  fields: Readonly<Record<string, string>>,
  where: Where | undefined,
): RecordTest {
  const tests: RecordTest[] = [];
  for (const [name, condition] of Object.entries(where ?? {})) {
    const at = `args.where.${name}`;
    if (!Object.hasOwn(fields, name))
      throw bad(origin, at, `type ${type} has no field "${name}"; its fields: ${Object.keys(fields).join(", ")}`);
    const kind = Object.hasOwn(KIND_OF, fields[name]) ? KIND_OF[fields[name]] : "json";
    const ctx: FieldCtx = { origin, type, name, declared: fields[name], kind };
    if (typeof condition !== "object" || condition === null) {
      tests.push(opTest(ctx, at, "eq", condition));
      continue;
    }
    const ops = Object.entries(condition);
    if (ops.length === 0) throw bad(origin, at, `give at least one operator: ${WHERE_OPS.join(", ")}`);
    for (const [op, operand] of ops) {
      // Checked here too: a caller that skipped the schema must not reach Object.prototype names.
      if (!isOp(op)) throw bad(origin, `${at}.${op}`, `unknown operator; expected one of ${WHERE_OPS.join(", ")}`);
      tests.push(opTest(ctx, `${at}.${op}`, op, operand as JsonValue));
    }
  }
  if (tests.length === 0) return () => true;
  if (tests.length === 1) return tests[0];
  return (record) => {
    for (const t of tests) if (!t(record)) return false;
    return true;
  };
}

interface FieldCtx {
  origin: string;
  type: string;
  name: string;
  declared: string;
  kind: Kind;
}

function bad(origin: string, at: string, problem: string): MachinaError {
  return new MachinaError("BAD_REQUEST", `${origin}: ${at}: ${problem}`, { details: { field: at } });
}

// A record's own value of a field; `constructor` or `toString` must not read Object.prototype's.
const own = (record: JsonObject, name: string): JsonValue | undefined =>
  Object.hasOwn(record, name) ? record[name] : undefined;

const missing = (v: unknown): v is null | undefined => v === null || v === undefined;

function opTest(ctx: FieldCtx, at: string, op: WhereOp, operand: JsonValue): RecordTest {
  const { name, kind } = ctx;
  if (!OPS_OF[kind].has(op))
    throw bad(
      ctx.origin,
      at,
      `${op} does not apply to field "${name}" of type ${ctx.type}, which is ${ctx.declared}; its operators: ${[...OPS_OF[kind]].join(", ")}`,
    );
  if (op === "exists") {
    if (typeof operand !== "boolean")
      throw bad(ctx.origin, at, `expected true or false, got ${describeValue(operand)}`);
    return operand ? (r) => !missing(own(r, name)) : (r) => missing(own(r, name));
  }
  if (op === "in" || op === "nin") {
    if (!Array.isArray(operand)) throw bad(ctx.origin, at, `expected a list, got ${describeValue(operand)}`);
    const set = new Set(operand.map((v, i) => comparable(ctx, `${at}[${i}]`, v)));
    const value = reader(ctx);
    return op === "in"
      ? (r) => {
          const v = value(r);
          return v !== null && set.has(v);
        }
      : (r) => {
          const v = value(r);
          return v === null || !set.has(v);
        };
  }
  if (op === "contains") return containsTest(ctx, at, operand);
  if (op === "prefix") {
    if (typeof operand !== "string") throw bad(ctx.origin, at, `expected a string, got ${describeValue(operand)}`);
    return (r) => {
      const v = own(r, name);
      return typeof v === "string" && v.startsWith(operand);
    };
  }
  const want = comparable(ctx, at, operand);
  const value = reader(ctx);
  switch (op) {
    case "eq":
      return (r) => value(r) === want;
    case "ne":
      return (r) => value(r) !== want;
    default: {
      // json values are compared only with operands of their own type: 5 > "4" means nothing.
      const cmp = ORDER[op];
      const kindOf = typeof want;
      return (r) => {
        const v = value(r);
        return v !== null && typeof v === kindOf && cmp(v, want);
      };
    }
  }
}

const ORDER: Record<
  "gt" | "gte" | "lt" | "lte",
  (a: string | number | boolean, b: string | number | boolean) => boolean
> = {
  gt: (a, b) => a > b,
  gte: (a, b) => a >= b,
  lt: (a, b) => a < b,
  lte: (a, b) => a <= b,
};

// A record's value in the form operands were normalized to (instants as epoch ms), or null when
// missing or not comparable.
function reader(ctx: FieldCtx): (record: JsonObject) => string | number | boolean | null {
  const { name } = ctx;
  if (ctx.kind === "timestamp")
    return (r) => {
      const v = own(r, name);
      if (typeof v === "number") return v;
      if (typeof v !== "string") return null;
      const ms = Date.parse(v);
      return Number.isNaN(ms) ? null : ms;
    };
  return (r) => {
    const v = own(r, name);
    return typeof v === "string" || typeof v === "number" || typeof v === "boolean" ? v : null;
  };
}

// An operand checked against the field's type and normalized as reader() normalizes values.
function comparable(ctx: FieldCtx, at: string, operand: JsonValue): string | number | boolean {
  const fail = (expected: string) =>
    bad(
      ctx.origin,
      at,
      `field "${ctx.name}" of type ${ctx.type} is ${ctx.declared}; expected ${expected}, got ${describeValue(operand)}`,
    );
  switch (ctx.kind) {
    case "text":
      if (typeof operand !== "string") throw fail("a string");
      return operand;
    case "number":
      if (typeof operand !== "number") throw fail("a number");
      return operand;
    case "boolean":
      if (typeof operand !== "boolean") throw fail("true or false");
      return operand;
    case "timestamp": {
      const ms = typeof operand === "number" ? operand : typeof operand === "string" ? Date.parse(operand) : NaN;
      if (!Number.isFinite(ms)) throw fail("an instant (ISO-8601 text or epoch ms)");
      return ms;
    }
    default:
      if (typeof operand !== "string" && typeof operand !== "number" && typeof operand !== "boolean")
        throw fail("a string, number or boolean");
      return operand;
  }
}

function containsTest(ctx: FieldCtx, at: string, operand: JsonValue): RecordTest {
  const { name } = ctx;
  if (ctx.kind === "text") {
    if (typeof operand !== "string")
      throw bad(
        ctx.origin,
        at,
        `field "${name}" of type ${ctx.type} is text; expected a string, got ${describeValue(operand)}`,
      );
    return (r) => {
      const v = own(r, name);
      return typeof v === "string" && v.includes(operand);
    };
  }
  const want = comparable(ctx, at, operand);
  return (r) => {
    const v = own(r, name);
    if (Array.isArray(v)) return v.includes(want);
    return typeof v === "string" && typeof want === "string" && v.includes(want);
  };
}
