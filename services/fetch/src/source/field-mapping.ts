// Field mapping of extracted records: each output field comes from a path (a rename when it is
// one top-level name, a nested path otherwise), a constant or a template, and may be coerced to
// a declared type. A value that cannot be coerced is the record's fault, not the mapping's: it
// is reported with the field and the value so that record alone can be set aside.
import { coerceValue, show, type ValueType } from "./coerce";
import { renderValue, type RenderContext, type Template, type TemplateRef } from "./template";
import { readValuePath, type ValuePath } from "./value-path";

/** Where one mapped field's value comes from. */
export type FieldSource =
  | { readonly kind: "path"; readonly path: ValuePath; readonly from: "record" | "body" }
  | { readonly kind: "const"; readonly value: unknown }
  | { readonly kind: "template"; readonly template: Template };

/** One output field of a mapping. */
export interface FieldMap {
  /** Output field name. */
  readonly name: string;
  readonly source: FieldSource;
  /** Type the value is coerced to; null keeps it as the upstream sent it. */
  readonly type: ValueType | null;
  /** Used when the value is absent or null; undefined for none (the field is then left out or null). */
  readonly default?: unknown;
}

/** How the selected items of one extract entry become records. */
export interface FieldMapping {
  readonly fields: readonly FieldMap[];
  /** Keep the item's unmapped top-level fields too (renamed ones are moved, not copied). */
  readonly keepUnmapped: boolean;
}

/** Why one record could not be mapped: the field, where its value came from, and what was wrong. */
export interface MappingProblem {
  readonly field: string;
  /** The path, template or constant the value came from, as written. */
  readonly from: string;
  readonly problem: string;
}

/** What a mapping reads besides the item: the whole response body, and the request's lead (with its source and query for errors). */
export interface MappingInput {
  readonly body: unknown;
  readonly request: Pick<RenderContext, "source" | "query" | "lead">;
}

/** Maps `item` to a record, or says which field could not be coerced and why. */
export function applyMapping(
  m: FieldMapping,
  item: Readonly<Record<string, unknown>>,
  input: MappingInput,
): { record: Record<string, unknown> } | { problem: MappingProblem } {
  const out: Record<string, unknown> = {};
  if (m.keepUnmapped) {
    const moved = new Set(m.fields.flatMap((f) => renamedFrom(f) ?? []));
    for (const [k, v] of Object.entries(item)) if (!moved.has(k)) out[k] = v;
  }
  for (const f of m.fields) {
    let value = valueOf(f.source, item, input);
    if ((value === undefined || value === null) && f.default !== undefined) value = f.default;
    if (value === undefined) {
      // The mapping decides the field: an absent value does not let a kept original through.
      delete out[f.name];
      continue;
    }
    if (f.type !== null) {
      const c = coerceValue(f.type, value);
      if (!c.ok) return { problem: { field: f.name, from: describeSource(f.source), problem: c.problem } };
      value = c.value;
    }
    out[f.name] = value;
  }
  return { record: out };
}

/** The lead placeholders of a mapping's templates, so a missing lead field fails before any call. */
export function mappingLeadRefs(m: FieldMapping): { readonly field: string; readonly template: Template }[] {
  return m.fields.flatMap((f) =>
    f.source.kind === "template" && f.source.template.refs.some((r) => r.scope === "lead")
      ? [{ field: f.name, template: f.source.template }]
      : [],
  );
}

/** A short description of where a field's value comes from, for error messages. */
export function describeSource(s: FieldSource): string {
  if (s.kind === "path") return `${s.from === "body" ? "body " : ""}path ${JSON.stringify(s.path.text)}`;
  if (s.kind === "template") return `template ${JSON.stringify(s.template.source)}`;
  return `constant ${show(s.value)}`;
}

// A one-name dot path from the item is a rename: with keepUnmapped the old name goes away.
function renamedFrom(f: FieldMap): string | null {
  const s = f.source;
  if (s.kind !== "path" || s.from !== "record" || s.path.kind !== "dot" || s.path.segments.length !== 1) return null;
  return s.path.segments[0] === f.name ? null : s.path.segments[0];
}

function valueOf(s: FieldSource, item: Readonly<Record<string, unknown>>, input: MappingInput): unknown {
  if (s.kind === "const") return s.value;
  if (s.kind === "path") return readValuePath(s.path, s.from === "body" ? input.body : item);
  return renderFieldTemplate(s.template, item, input);
}

// One placeholder keeps the value's JSON type (a number stays a number); text around
// placeholders makes text. A record value that is absent or null makes the whole field absent:
// "https://x/{{record.id}}" without an id is no URL.
function renderFieldTemplate(t: Template, item: Readonly<Record<string, unknown>>, input: MappingInput): unknown {
  const read = (ref: TemplateRef): unknown =>
    ref.scope === "record"
      ? readRecord(item, ref.path)
      : renderValue(single(t, ref), { ...input.request, data: {} }, "extract mapping");
  const only = t.parts.length === 1 ? t.parts[0] : undefined;
  if (only !== undefined && "ref" in only) return read(only.ref);
  let text = "";
  for (const p of t.parts) {
    if ("text" in p) {
      text += p.text;
      continue;
    }
    const v = read(p.ref);
    if (v === undefined || v === null) return undefined;
    text += typeof v === "string" ? v : typeof v === "object" ? JSON.stringify(v) : String(v);
  }
  return text;
}

function readRecord(item: unknown, path: readonly string[]): unknown {
  let v: unknown = item;
  // Own properties only, as everywhere records are read.
  for (const k of path)
    v = v !== null && typeof v === "object" && Object.hasOwn(v, k) ? (v as Record<string, unknown>)[k] : undefined;
  return v;
}

// Lead placeholders go through the request template engine, so a missing lead field fails with
// the same message (naming the field and the ledger) as it would in a path or param.
function single(t: Template, ref: TemplateRef): Template {
  return { source: t.source, parts: [{ ref }], refs: [ref] };
}
