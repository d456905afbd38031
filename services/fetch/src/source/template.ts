import { MachinaError } from "@machina/wire";

/**
 * Where a placeholder reads from: the lead's args, the source's resolved data, (in extract field
 * mappings only) the record being mapped, or (in an incremental query's request) its cursor.
 */
export type TemplateScope = "lead" | "data" | "record" | "incremental";

const REQUEST_SCOPES: readonly TemplateScope[] = ["lead", "data", "incremental"];

/** A placeholder such as `{{lead.domain}}`, split into scope and field path. */
export interface TemplateRef {
  readonly scope: TemplateScope;
  /** Field path below the scope; `lead.a.b` → ["a", "b"]. */
  readonly path: readonly string[];
}

/** One piece of a compiled template: literal text or a placeholder. */
export type TemplatePart = { readonly text: string } | { readonly ref: TemplateRef };

/** A string with `{{lead.x}}` / `{{data.x}}` placeholders, parsed once when the source is compiled. */
export interface Template {
  /** The text as written in the config, kept for error messages. */
  readonly source: string;
  readonly parts: readonly TemplatePart[];
  readonly refs: readonly TemplateRef[];
}

/** Everything a template may read while rendering one request, plus what to blame if a field is missing. */
export interface RenderContext {
  readonly source: string;
  readonly query: string;
  readonly lead: { readonly id: string; readonly args: Readonly<Record<string, unknown>> };
  readonly data: Readonly<Record<string, string>>;
  /** An incremental query's cursor for this lead, which `{{incremental.value}}` renders. */
  readonly incremental?: { readonly value: string | number };
}

const PLACEHOLDER = /\{\{\s*([^{}]*?)\s*\}\}/g;
const FIELD = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/**
 * Parses `text`; throws a message (prefixed with `where`) when a placeholder is malformed or
 * reads a scope outside `scopes` (default: lead and data, what requests may read).
 */
export function compileTemplate(text: string, where: string, scopes = REQUEST_SCOPES): Template {
  const parts: TemplatePart[] = [];
  const refs: TemplateRef[] = [];
  let last = 0;
  for (const m of text.matchAll(PLACEHOLDER)) {
    const at = m.index ?? 0;
    if (at > last) parts.push({ text: text.slice(last, at) });
    const ref = parseRef(m[1], where, scopes);
    parts.push({ ref });
    refs.push(ref);
    last = at + m[0].length;
  }
  if (last < text.length) parts.push({ text: text.slice(last) });
  // Leftover braces mean a placeholder the pattern did not recognise; silently sending them
  // upstream would produce a confusing 404 far from the typo.
  for (const p of parts) {
    if ("text" in p && (p.text.includes("{{") || p.text.includes("}}"))) {
      throw new MachinaError(
        "BAD_REQUEST",
        `${where}: unbalanced "{{" / "}}" in ${JSON.stringify(text)}; write placeholders as {{lead.field}} or {{data.name}}`,
        { retryable: false },
      );
    }
  }
  return { source: text, parts, refs };
}

function parseRef(inner: string, where: string, scopes: readonly TemplateScope[]): TemplateRef {
  const [scope, ...path] = inner.split(".");
  if (!scopes.includes(scope as TemplateScope) || path.length === 0 || !path.every((p) => FIELD.test(p))) {
    const forms = scopes
      .filter((s) => s !== "incremental")
      .map((s) => `{{${s}.${s === "data" ? "<name>" : "<field>"}}}`);
    const also = scopes.includes("incremental") ? "; an incremental query may also read {{incremental.value}}" : "";
    throw new MachinaError(
      "BAD_REQUEST",
      `${where}: placeholder {{${inner}}} must be ${forms.slice(0, -1).join(", ")} or ${forms[forms.length - 1]} (letters, digits, '_' or '-', dot-separated)${also}`,
      { retryable: false },
    );
  }
  if (scope === "data" && path.length !== 1) {
    throw new MachinaError(
      "BAD_REQUEST",
      `${where}: placeholder {{${inner}}}: data values are flat, write {{data.<name>}}`,
      { retryable: false },
    );
  }
  if (scope === "incremental" && (path.length !== 1 || path[0] !== "value")) {
    throw new MachinaError(
      "BAD_REQUEST",
      `${where}: placeholder {{${inner}}}: the cursor has one value, write {{incremental.value}}`,
      { retryable: false },
    );
  }
  return { scope: scope as TemplateScope, path };
}

/**
 * Renders `t` to a string; `encode` is applied to substituted values only (paths URL-encode
 * them, params and headers do not). `field` names the template's place for errors, e.g. `path`.
 */
export function renderTemplate(
  t: Template,
  ctx: RenderContext,
  field: string,
  encode: (v: string) => string = (v) => v,
): string {
  let out = "";
  for (const p of t.parts) out += "text" in p ? p.text : encode(stringify(lookup(p.ref, t, ctx, field)));
  return out;
}

/**
 * Renders a template that may stand for a non-string value: a template that is exactly one
 * placeholder keeps the lead value's JSON type (numbers, arrays, objects in request bodies).
 */
export function renderValue(t: Template, ctx: RenderContext, field: string): unknown {
  const only = t.parts.length === 1 ? t.parts[0] : undefined;
  if (only !== undefined && "ref" in only) return lookup(only.ref, t, ctx, field);
  return renderTemplate(t, ctx, field);
}

function lookup(ref: TemplateRef, t: Template, ctx: RenderContext, field: string): unknown {
  const name = ref.path.join(".");
  if (ref.scope === "data") {
    const v = Object.hasOwn(ctx.data, name) ? ctx.data[name] : undefined;
    // compileSource checks every {{data.x}} against the declared data, so this is a real bug.
    if (v === undefined)
      throw new MachinaError("INTERNAL", `query ${ctx.source}.${ctx.query}: data value "${name}" was not resolved`, {
        retryable: false,
      });
    return v;
  }
  if (ref.scope === "incremental") {
    // compileSource allows {{incremental.value}} only in queries that declare incremental.
    if (ctx.incremental === undefined)
      throw new MachinaError("INTERNAL", `query ${ctx.source}.${ctx.query}: its cursor value was not read`, {
        retryable: false,
      });
    return ctx.incremental.value;
  }
  // Record placeholders are filled by the extract mapping, which has the record; never here.
  if (ref.scope === "record")
    throw new MachinaError("INTERNAL", `query ${ctx.source}.${ctx.query}: {{record.${name}}} outside a field mapping`, {
      retryable: false,
    });
  let v: unknown = ctx.lead.args;
  // Own properties only: a lead without `constructor` lacks that field, it has no Object function.
  for (const k of ref.path)
    v = v !== null && typeof v === "object" && Object.hasOwn(v, k) ? (v as Record<string, unknown>)[k] : undefined;
  if (v === undefined || v === null || v === "") {
    throw new MachinaError(
      "BAD_REQUEST",
      `query ${ctx.source}.${ctx.query} needs lead field "${name}" (${field} ${t.source}); check the ledger that produced lead "${ctx.lead.id}"`,
      { retryable: false, details: { field: name, source: ctx.source, query: ctx.query, lead: ctx.lead.id } },
    );
  }
  return v;
}

function stringify(v: unknown): string {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  // Objects have no canonical text form in a URL; JSON is at least explicit and reversible.
  return JSON.stringify(v);
}
