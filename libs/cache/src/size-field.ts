import * as z from "zod";
import { parseSize, sizeProblem } from "@machina/config";

/**
 * A component field holding a size (`512M`, `1.5G`, `64K`, or a number of bytes), as bytes; at
 * least 1 byte, since a cap of nothing is what the null kind is for.
 */
export function sizeField() {
  return z
    .union([z.string(), z.number()], {
      error: (iss) => (iss.input === undefined ? undefined : (sizeProblem(iss.input) ?? undefined)),
    })
    .transform((v, ctx) => {
      const problem = sizeProblem(v);
      if (problem !== null) {
        ctx.addIssue({ code: "custom", message: problem, input: v });
        return z.NEVER;
      }
      const bytes = parseSize(v);
      if (bytes < 1)
        ctx.addIssue({
          code: "custom",
          message: `must be at least 1 byte, got ${JSON.stringify(v)}; to cache nothing, write kind: null`,
          input: v,
        });
      return bytes;
    })
    .meta({ kind: "size" });
}
