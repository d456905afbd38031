import { protoKeyPath } from "@machina/protos";
import { MachinaError } from "@machina/wire";
import { applyMapping, mappingLeadRefs, type MappingInput } from "./field-mapping";
import type { ExtractSpec } from "./source-def";
import { renderValue, type RenderContext } from "./template";
import { selectItems, type ValuePath } from "./value-path";

export { readPath } from "./value-path";

/** Records grouped by entity type: `{ website: [{...}, {...}] }`. */
export type EntityRecords = Record<string, Record<string, unknown>[]>;

/** A record left out of a page: which one, the field at fault, and the error that says what was wrong. */
export interface RejectedRecord {
  readonly type: string;
  readonly extract: string;
  /** Page number (from 1) when the query paginates, else null. */
  readonly page: number | null;
  /** Position of the item among those the extract entry selected on that page, from 0. */
  readonly index: number;
  readonly field: string;
  readonly error: MachinaError;
}

/** The records of one response, and the ones set aside because a field could not be typed. */
export interface ExtractedPage {
  readonly records: EntityRecords;
  readonly rejected: readonly RejectedRecord[];
}

/** What extraction knows of the request: its page (when paging) and lead (for mapping templates). */
export interface ExtractOptions {
  readonly page?: number | null;
  readonly lead?: MappingInput["request"]["lead"];
}

/**
 * Turns a response body into records per entity type: an object at an extract path is one
 * record, a list is one record per element, and an absent or null value is none; a field
 * mapping, when declared, builds each record. Every declared type appears in the result, so
 * consumers can tell "no records" from "not asked". A record whose field cannot be coerced (or
 * that carries a `__proto__` key) is rejected alone; a selection that is not made of objects
 * fails the whole response, since it means the path or the API is wrong.
 */
export function extractPage(
  body: unknown,
  specs: readonly ExtractSpec[],
  source: string,
  query: string,
  opts: ExtractOptions = {},
): ExtractedPage {
  const out: EntityRecords = {};
  const rejected: RejectedRecord[] = [];
  const page = opts.page ?? null;
  const input: MappingInput = { body, request: { source, query, lead: opts.lead ?? { id: "", args: {} } } };
  for (const spec of specs) {
    // Types follow the name rule (compileSource), so `__proto__` never gets here and the
    // assignment below always makes an own key.
    const list = Object.hasOwn(out, spec.type) ? out[spec.type] : (out[spec.type] = []);
    const select: ValuePath = spec.select ?? { kind: "dot", text: spec.path.join("."), segments: spec.path };
    const items = selectItems(select, body);
    const where = `query ${source}.${query}: extract ${spec.name}`;
    items.forEach((item, i) => {
      if (item === null || typeof item !== "object" || Array.isArray(item)) {
        const place =
          select.kind === "jsonpath"
            ? `JSONPath ${JSON.stringify(select.text)}`
            : spec.path.length === 0
              ? "the body"
              : `path "${spec.path.join(".")}"`;
        throw new MachinaError(
          "UPSTREAM",
          `${where} expected an object or a list of objects at ${place}, got ${kind(item)}${items.length > 1 ? ` at index ${i}` : ""}; fix the extract path or check the upstream API version`,
          { retryable: false, details: { source, query, extract: spec.name, path: select.text } },
        );
      }
      const at = page === null ? `record ${i}` : `page ${page}, record ${i}`;
      const reject = (field: string, message: string, extra: Record<string, unknown>) =>
        rejected.push({
          type: spec.type,
          extract: spec.name,
          page,
          index: i,
          field,
          error: new MachinaError("UPSTREAM", `${where} (type ${spec.type}): ${at}${message}`, {
            retryable: false,
            details: { source, query, extract: spec.name, type: spec.type, page, record: i, field, ...extra },
          }),
        });
      let mapped = item as Record<string, unknown>;
      if (spec.mapping !== undefined && spec.mapping !== null) {
        const r = applyMapping(spec.mapping, mapped, input);
        if ("problem" in r) {
          const p = r.problem;
          reject(
            p.field,
            `: field "${p.field}" (from ${p.from}): ${p.problem}; fix the field's type in the mapping or check the upstream API`,
            { from: p.from },
          );
          return;
        }
        mapped = r.record;
      }
      // The mesh refuses this key in every message, so say here which record brought it.
      const bad = protoKeyPath(mapped);
      if (bad !== null) {
        reject(
          bad,
          ` has a "__proto__" key (at ${bad}), which the mesh cannot carry (it names the prototype of JavaScript objects); check the upstream API`,
          { key: bad },
        );
        return;
      }
      list.push(mapped);
    });
  }
  return { records: out, rejected };
}

/** Like {@link extractPage}, but a rejected record fails the whole response with its error. */
export function extractRecords(
  body: unknown,
  specs: readonly ExtractSpec[],
  source: string,
  query: string,
  opts: ExtractOptions = {},
): EntityRecords {
  const { records, rejected } = extractPage(body, specs, source, query, opts);
  if (rejected.length > 0) throw rejected[0].error;
  return records;
}

/**
 * Throws, as a request template would, when a mapping template reads a lead field the lead
 * lacks: called before the first upstream call, so a bad lead costs no quota.
 */
export function checkExtractLeads(specs: readonly ExtractSpec[], ctx: RenderContext): void {
  for (const spec of specs) {
    if (spec.mapping === undefined || spec.mapping === null) continue;
    for (const { field, template } of mappingLeadRefs(spec.mapping))
      for (const ref of template.refs)
        if (ref.scope === "lead")
          renderValue(
            { source: template.source, parts: [{ ref }], refs: [ref] },
            ctx,
            `extract ${spec.name} field ${field}`,
          );
  }
}

/** Appends every record of `more` to `into`, type by type. */
export function mergeRecords(into: EntityRecords, more: EntityRecords): EntityRecords {
  for (const [type, records] of Object.entries(more))
    (Object.hasOwn(into, type) ? into[type] : (into[type] = [])).push(...records);
  return into;
}

/** Total number of records across all types. */
export function countRecords(records: EntityRecords): number {
  let n = 0;
  for (const list of Object.values(records)) n += list.length;
  return n;
}

function kind(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  return typeof v === "string" ? "a string" : typeof v === "object" ? "an object" : `a ${typeof v}`;
}
