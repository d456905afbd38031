// The `extract` section of a query: which items of a response become records of which entity
// type, and how their fields are mapped and typed.
import * as z from "zod";
import { describeValue, field } from "@machina/config";
import { VALUE_TYPES } from "./coerce";

const PATH_DOC =
  "A dot path (`a.b.0`; numeric segments index lists; `.` or `$` is the whole body) or a JSONPath starting with `$.` or `$[` (filters `[?(@.x > 1)]`, wildcards, slices, recursive descent `$..x`; script expressions and function calls are refused).";

const FIELD_SPEC = field
  .object({
    path: field
      .text()
      .optional()
      .describe(
        `Where the value is, below the item (or the body with \`from: body\`). ${PATH_DOC} A JSONPath with wildcards, filters or slices gives the list of its matches.`,
      ),
    from: field
      .oneOf(["record", "body"])
      .optional()
      .describe("What `path` reads: `record` (the selected item, default) or `body` (the whole response)."),
    const: z.json().optional().describe("A constant value, the same for every record."),
    template: field
      .text()
      .optional()
      .describe(
        "Text with `{{record.<field>}}` and `{{lead.<field>}}` placeholders; exactly one placeholder keeps the value's type. A record value that is absent makes the field absent.",
      ),
    type: field
      .oneOf(VALUE_TYPES)
      .optional()
      .describe(
        "Coerce the value to this type (names as in data/types, plus `float` and `date`); a value that cannot be is reported with its record and field, and that record alone is left out. Default: as sent.",
      ),
    default: z.json().optional().describe("Value used when the one found is absent or null."),
  })
  .superRefine((v, ctx) => {
    const given = (["path", "const", "template"] as const).filter((k) => v[k] !== undefined);
    if (given.length !== 1)
      ctx.addIssue({
        code: "custom",
        message: `give exactly one of path, const, template (got ${given.length === 0 ? "none" : given.join(", ")})`,
        input: v,
      });
    if (v.from !== undefined && v.path === undefined)
      ctx.addIssue({ code: "custom", path: ["from"], message: "only applies to path", input: v.from });
    if (v.default !== undefined && v.const !== undefined)
      ctx.addIssue({ code: "custom", path: ["default"], message: "a constant needs no default", input: v.default });
  });

const FIELD_MAP = z
  .union([field.text(), FIELD_SPEC], {
    error: (iss) =>
      iss.code === "invalid_union"
        ? `expected a path (text) or a mapping with one of path, const, template, got ${describeValue(iss.input)}`
        : undefined,
  })
  .describe("An output field: a path (text; a one-name path renames), or a mapping with one of path, const, template.");

const EXTRACT_ENTRY = field
  .object({
    type: field.name().describe("Entity type the records belong to."),
    path: field
      .text()
      .describe(
        `Where the items are in the response. ${PATH_DOC} An object there is one record, a list one record per element; every match of a JSONPath counts, a list match spread.`,
      ),
    fields: field
      .names(FIELD_MAP)
      .optional()
      .describe("Output fields of each record, by name. Default: every item as it is."),
    keep_unmapped: field
      .flag()
      .default(false)
      .describe(
        "With `fields`, also keep the item's other top-level fields (a field renamed by a one-name path is moved, not copied). Default false: only the mapped fields.",
      ),
  })
  .superRefine((v, ctx) => {
    if (v.keep_unmapped && v.fields === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["keep_unmapped"],
        message: "only applies with fields (without them every item is kept whole)",
        input: v.keep_unmapped,
      });
  });

/** `queries.<name>.extract`: records to take from each response, by entry name. */
export const EXTRACT = field
  .names(EXTRACT_ENTRY, {
    emptyHint: "declare at least one entry: { <name>: { type: <entity type>, path: <response path> } }",
  })
  .describe("Records to take from each response, by entry name.");
