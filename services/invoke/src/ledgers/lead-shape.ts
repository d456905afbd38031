import { describeValue, isPlainObject } from "@machina/protos";
import type { JsonObject, JsonValue } from "@machina/protos";

/** Types a declared lead field may have; `any` takes every JSON value. */
export const LEAD_FIELD_TYPES = ["string", "number", "integer", "boolean", "any"] as const;

/** A declared lead field type. */
export type LeadFieldType = (typeof LEAD_FIELD_TYPES)[number];

/** One declared field of a ledger's leads. */
export interface LeadField {
  type: LeadFieldType;
  required: boolean;
}

/** The one structure every lead of a ledger has. */
export interface LeadShape {
  /** The field that identifies a lead. */
  leadId: string;
  /** Declared fields; null when the ledger declares none (any fields, the id field required). */
  fields: ReadonlyMap<string, LeadField> | null;
  /**
   * What to do with a field the ledger does not declare: `refuse` the lead (operator-written
   * leads, where it is a typo) or `drop` the field (rows of a producer, which carry more).
   */
  undeclared: "refuse" | "drop";
}

/** A lead that fits: its id as text and its fields as canonical JSON. */
export interface FittedLead {
  id: string;
  argsJson: string;
}

/**
 * A copy of `s` as one flat string. A parser's strings are often views into the whole source
 * text (a 100,000-lead ledger file); a lead id kept as such a view keeps the text alive, and a
 * larger live heap lets V8 grow the heap further before collecting (peak RSS).
 */
function flat(s: string): string {
  return JSON.parse(JSON.stringify(s)) as string;
}

/** Parses `string`, `number?` etc. into a field; null for an unknown type. */
export function parseFieldType(text: string): LeadField | null {
  const required = !text.endsWith("?");
  const type = (required ? text : text.slice(0, -1)) as LeadFieldType;
  return (LEAD_FIELD_TYPES as readonly string[]).includes(type) ? { type, required } : null;
}

function fitsType(type: LeadFieldType, v: JsonValue): boolean {
  switch (type) {
    case "string":
      return typeof v === "string";
    case "number":
      return typeof v === "number" && Number.isFinite(v);
    case "integer":
      return typeof v === "number" && Number.isSafeInteger(v);
    case "boolean":
      return typeof v === "boolean";
    case "any":
      return true;
  }
}

/**
 * Checks one lead against its ledger's shape: the id field present (a non-empty string or a
 * number), every required declared field present with its type, no undeclared field unless the
 * shape drops them. Answers the fitted lead or a one-line problem naming the field.
 */
export function fitLead(shape: LeadShape, raw: unknown): FittedLead | { problem: string } {
  if (!isPlainObject(raw)) return { problem: `expected a mapping of fields, got ${describeValue(raw)}` };
  if (Object.hasOwn(raw, "__proto__"))
    return { problem: 'field "__proto__" is reserved (the prototype of JavaScript objects); choose another' };
  const id = Object.hasOwn(raw, shape.leadId) ? raw[shape.leadId] : undefined;
  if (id === undefined || id === null || id === "") return { problem: `missing its id field "${shape.leadId}"` };
  if (typeof id !== "string" && typeof id !== "number")
    return { problem: `id field "${shape.leadId}": expected a string or number, got ${describeValue(id)}` };
  const args = raw as JsonObject;
  if (shape.fields === null) return { id: flat(String(id)), argsJson: JSON.stringify(args) };

  const out: JsonObject = {};
  for (const [name, f] of shape.fields) {
    const v = Object.hasOwn(args, name) ? args[name] : undefined;
    if (v === undefined || v === null) {
      if (f.required) return { problem: `missing field "${name}" (${f.type})` };
      continue;
    }
    if (!fitsType(f.type, v)) return { problem: `field "${name}": expected ${f.type}, got ${describeValue(v)}` };
    out[name] = v;
  }
  for (const name of Object.keys(args)) {
    if (name === shape.leadId || shape.fields.has(name)) continue;
    if (shape.undeclared === "refuse") {
      const declared = [...new Set([shape.leadId, ...shape.fields.keys()])].join(", ");
      return { problem: `undeclared field "${name}" (declared: ${declared})` };
    }
  }
  out[shape.leadId] = id;
  return { id: flat(String(id)), argsJson: JSON.stringify(out) };
}
