// Compiles one validated `extract` entry: its selector, and its field mapping with templates
// parsed and constants coerced now, so a typo in a source file stops start-up instead of
// failing every fetch.
import type * as z from "zod";
import { componentError } from "@machina/config";
import { MachinaError } from "@machina/wire";
import { coerceValue, type ValueType } from "./coerce";
import type { EXTRACT } from "./extract-schema";
import type { FieldMap, FieldMapping, FieldSource } from "./field-mapping";
import type { ExtractSpec } from "./source-def";
import { compileTemplate, type TemplateScope } from "./template";
import { compileValuePath } from "./value-path";

type Entry = z.output<typeof EXTRACT>[string];

// Data values may be secrets, and records are stored and shown: mappings never read them.
const MAPPING_SCOPES: readonly TemplateScope[] = ["record", "lead"];

/** Compiles extract entry `name` of a query; `where` is its config path (`queries.q.extract.name`). */
export function compileExtract(name: string, x: Entry, origin: string, where: string): ExtractSpec {
  const select = withPlace(origin, `${where}.path`, () => compileValuePath(x.path, `${origin}: ${where}.path`));
  // A plain dot path without a mapping compiles to what it always did: name, type, path.
  const spec: ExtractSpec = { name, type: x.type, path: select.kind === "dot" ? select.segments : [] };
  const mapping: FieldMapping | null =
    x.fields === undefined
      ? null
      : {
          fields: Object.entries(x.fields).map(([f, fs]) => fieldOf(f, fs, origin, `${where}.fields.${f}`)),
          keepUnmapped: x.keep_unmapped,
        };
  return {
    ...spec,
    ...(select.kind === "jsonpath" ? { select } : {}),
    ...(mapping === null ? {} : { mapping }),
  };
}

function fieldOf(name: string, spec: NonNullable<Entry["fields"]>[string], origin: string, where: string): FieldMap {
  const s = typeof spec === "string" ? { path: spec } : spec;
  const type: ValueType | null = typeof spec === "string" ? null : (spec.type ?? null);
  let source: FieldSource;
  if (s.path !== undefined) {
    const text = s.path;
    const path = withPlace(origin, `${where}.path`, () => compileValuePath(text, `${origin}: ${where}.path`));
    source = { kind: "path", path, from: "from" in s && s.from === "body" ? "body" : "record" };
  } else if ("template" in s && s.template !== undefined) {
    const text = s.template;
    const template = withPlace(origin, `${where}.template`, () =>
      compileTemplate(text, `${origin}: ${where}.template`, MAPPING_SCOPES),
    );
    source = { kind: "template", template };
  } else {
    source = { kind: "const", value: "const" in s ? constOf(s.const, type, origin, where) : null };
  }
  const dflt =
    "default" in s && s.default !== undefined ? constOf(s.default, type, origin, `${where}.default`) : undefined;
  return dflt === undefined ? { name, source, type } : { name, source, type, default: dflt };
}

// A constant or default that is not of its field's type would be wrong in every record.
function constOf(value: unknown, type: ValueType | null, origin: string, where: string): unknown {
  if (type === null) return value;
  const c = coerceValue(type, value);
  if (!c.ok) throw componentError(origin, where, `${c.problem}, the declared type of the field`);
  return c.value;
}

// Path and template compilers throw BAD_REQUEST with the place in the text; config errors
// carry the place as a path, which start-up reports the same way as every other schema mistake.
function withPlace<T>(origin: string, where: string, compile: () => T): T {
  try {
    return compile();
  } catch (err) {
    if (!(err instanceof MachinaError)) throw err;
    const prefix = `${origin}: ${where}: `;
    throw componentError(
      origin,
      where,
      err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message,
    );
  }
}
