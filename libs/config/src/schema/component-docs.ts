import * as z from "zod";
import type { ComponentKind } from "./component-kind";

type Json = Record<string, unknown>;

interface Row {
  path: string;
  type: string;
  required: boolean;
  default?: unknown;
  doc: string;
}

/**
 * The reference page of every component kind, in Markdown: one section per kind with its file
 * location, purpose, example and a table of every field (type, default, allowed values, doc).
 * Deterministic, so CI can compare it with the committed `docs/components.md`.
 */
export function renderComponentDocs(kinds: readonly ComponentKind<z.ZodType>[], intro: string): string {
  const parts = [intro.trim(), ""];
  for (const k of [...kinds].sort((a, b) => a.kind.localeCompare(b.kind))) {
    const schema = z.toJSONSchema(k.schema, { io: "input", unrepresentable: "any" }) as Json;
    parts.push(
      `## ${k.kind}`,
      "",
      `Files: \`config/<mode>/${k.kind}/<name>.yaml\` (or \`.json\`, \`.xml\`); the file name is the component's name.`,
      "",
      k.doc.trim(),
      "",
    );
    if (k.example !== undefined) parts.push("```yaml", k.example.trim(), "```", "");
    const rows: Row[] = [];
    walk(schema, "", true, rows);
    parts.push("| Field | Type | Required | Default | Description |", "| --- | --- | --- | --- | --- |");
    for (const r of rows) {
      const def = r.default === undefined ? "" : `\`${JSON.stringify(r.default)}\``;
      parts.push(
        `| \`${r.path || "(document)"}\` | ${r.type} | ${r.required ? "yes" : ""} | ${def} | ${cell(r.doc)} |`,
      );
    }
    parts.push("");
  }
  return `${parts.join("\n").trimEnd()}\n`;
}

function cell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n+/g, " ");
}

// Rows for this node (when it is a leaf or documented) and everything under it.
function walk(s: Json, path: string, required: boolean, rows: Row[]): void {
  const doc = typeof s.description === "string" ? s.description : "";
  const variants = (s.oneOf ?? s.anyOf) as Json[] | undefined;
  if (variants !== undefined) {
    const objects = variants.filter((v) => v.type === "object");
    const label = typeLabel(s);
    if (path !== "") rows.push({ path, type: label, required, default: s.default, doc });
    for (const v of objects) {
      const tag = discriminator(v);
      const props = (v.properties ?? {}) as Record<string, Json>;
      const req = new Set((v.required ?? []) as string[]);
      for (const [k, p] of Object.entries(props)) {
        if (tag !== null && k === tag.key) continue;
        walk(p, tag === null ? join(path, k) : `${join(path, k)} (${tag.key}: ${tag.value})`, req.has(k), rows);
      }
    }
    return;
  }
  if (s.type === "object" && s.properties !== undefined) {
    if (path !== "" && doc !== "") rows.push({ path, type: "mapping", required, default: s.default, doc });
    const req = new Set((s.required ?? []) as string[]);
    for (const [k, p] of Object.entries(s.properties as Record<string, Json>)) walk(p, join(path, k), req.has(k), rows);
    return;
  }
  if (s.type === "object" && typeof s.additionalProperties === "object") {
    const keyKind = (s.propertyNames as Json | undefined)?.kind === "name" ? "<name>" : "<key>";
    rows.push({
      path,
      type: `mapping of ${keyKind} to ${typeLabel(s.additionalProperties as Json)}`,
      required,
      default: s.default,
      doc,
    });
    const value = s.additionalProperties as Json;
    if (value.type === "object" || value.oneOf !== undefined || value.anyOf !== undefined)
      walk(value, `${path}.${keyKind}`, true, rows);
    return;
  }
  if (s.type === "array" && typeof s.items === "object") {
    const items = s.items as Json;
    rows.push({ path, type: `list of ${typeLabel(items)}`, required, default: s.default, doc });
    if (items.type === "object" || items.oneOf !== undefined || items.anyOf !== undefined)
      walk(items, `${path}[]`, true, rows);
    return;
  }
  rows.push({ path, type: typeLabel(s), required, default: s.default, doc });
}

function discriminator(v: Json): { key: string; value: string } | null {
  for (const [k, p] of Object.entries((v.properties ?? {}) as Record<string, Json>)) {
    if (typeof p.const === "string") return { key: k, value: p.const };
  }
  return null;
}

function typeLabel(s: Json): string {
  if (typeof s.kind === "string") return s.kind === "names" ? "mapping of names" : s.kind;
  if (s.const !== undefined) return `\`${JSON.stringify(s.const)}\``;
  if (Array.isArray(s.enum)) return `one of ${s.enum.map((v) => `\`${String(v)}\``).join(", ")}`;
  const variants = (s.oneOf ?? s.anyOf) as Json[] | undefined;
  if (variants !== undefined) {
    const tags = variants.map(discriminator);
    if (tags.every((t) => t !== null) && new Set(tags.map((t) => t!.key)).size === 1) {
      return `mapping by \`${tags[0]!.key}\`: ${tags.map((t) => `\`${t!.value}\``).join(", ")}`;
    }
    return variants.map(typeLabel).join(" or ");
  }
  switch (s.type) {
    case "integer": {
      const min = typeof s.minimum === "number" ? s.minimum : null;
      const max = typeof s.maximum === "number" && s.maximum < Number.MAX_SAFE_INTEGER ? s.maximum : null;
      return max !== null ? `integer ${min ?? ""}–${max}` : min !== null ? `integer ≥ ${min}` : "integer";
    }
    case "object":
      return "mapping";
    case "array":
      return "list";
    case undefined:
      return "any";
    default:
      return String(s.type);
  }
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}
