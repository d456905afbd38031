import { closestWord } from "@machina/config";
import { MachinaError } from "@machina/wire";
import type { DataReads } from "../reads/data-reads";

/** Field types a numeric computation reads (booleans as 0/1, timestamps as epoch ms). */
export const NUMERIC_TYPES: ReadonlySet<string> = new Set(["int", "bigint", "double", "boolean", "timestamp"]);

/**
 * Refuses fields the type does not declare (BAD_REQUEST naming where they were given, with the
 * nearest declared name), so a typo fails instead of answering no rows; with `numeric`, also a
 * declared field that is not a number. An unknown type answers data's NOT_FOUND. Answers the
 * type's fields.
 */
export async function checkFields(
  origin: string,
  data: DataReads,
  type: string,
  given: readonly [where: string, field: string][],
  opts: { numeric?: readonly string[] } = {},
): Promise<Record<string, string>> {
  const fields = await data.fields(type);
  const declared = Object.keys(fields);
  for (const [where, f] of given) {
    if (Object.hasOwn(fields, f)) {
      if (opts.numeric?.includes(where) === true && !NUMERIC_TYPES.has(fields[f])) {
        const numeric = declared.filter((d) => NUMERIC_TYPES.has(fields[d]));
        throw new MachinaError(
          "BAD_REQUEST",
          `${origin}: ${where}: field "${f}" of type ${type} is ${fields[f]}, not a number; its numeric fields: ${numeric.join(", ") || "none"}`,
          { details: { field: where, type, known: numeric } },
        );
      }
      continue;
    }
    const hint = closestWord(f, declared);
    throw new MachinaError(
      "BAD_REQUEST",
      `${origin}: ${where}: type ${type} has no field "${f}"${hint === null ? "" : ` (did you mean "${hint}"?)`}; its fields: ${declared.join(", ")}`,
      { details: { field: where, type, known: declared } },
    );
  }
  return fields;
}
