// Byte sizes in source files (`max_body: 10MB`). Units are powers of 1024, as in NATS's own
// `max_payload`, so `1MB` here is the same number of bytes an operator sees there; `KiB`/`MiB`/
// `GiB` are accepted as the same units for those who write them the IEC way.
import * as z from "zod";
import { describeValue } from "@machina/config";

const UNIT_BYTES: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1024,
  kib: 1024,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};

const SIZE = /^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$/i;

/** Examples used in every size error message. */
export const SIZE_EXAMPLES = "512KB, 10MB or 1GB";

/** Largest cap a source may set; a body this size is already a memory hazard for one replica. */
export const MAX_BODY_LIMIT_BYTES = 1024 ** 3;

/**
 * Parses `10MB`, `512KB`, `1.5GB`, `100B` into whole bytes; null when malformed, not a string, or
 * not a whole number of bytes. A bare number is refused: the unit must be written.
 */
export function parseByteSize(v: unknown): number | null {
  if (typeof v !== "string") return null;
  const m = SIZE.exec(v);
  if (m === null) return null;
  const unit = UNIT_BYTES[m[2].toLowerCase()];
  if (unit === undefined) return null;
  const bytes = Number(m[1]) * unit;
  return Number.isSafeInteger(bytes) ? bytes : null;
}

/** Formats bytes in the largest unit that divides them exactly, e.g. 10485760 → `10MB`. */
export function formatByteSize(bytes: number): string {
  for (const unit of ["GB", "MB", "KB"] as const) {
    const size = UNIT_BYTES[unit.toLowerCase()];
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes}B`;
}

function sizeProblem(v: unknown): string {
  if (typeof v === "number")
    return `expected a size with a unit such as ${SIZE_EXAMPLES}, got the bare number ${v}; write ${v}B or ${v}KB, whichever is meant`;
  return `expected a size such as ${SIZE_EXAMPLES} (units B, KB, MB, GB; powers of 1024), got ${describeValue(v)}`;
}

/** A response body cap such as `10MB`, as bytes, from 1 KB to 1 GB. */
export function bodySizeField() {
  return z
    .string({ error: (iss) => (iss.input === undefined ? undefined : sizeProblem(iss.input)) })
    .transform((text, ctx) => {
      const bytes = parseByteSize(text);
      if (bytes === null) {
        ctx.addIssue({ code: "custom", message: sizeProblem(text), input: text });
        return z.NEVER;
      }
      if (bytes < 1024 || bytes > MAX_BODY_LIMIT_BYTES)
        ctx.addIssue({
          code: "custom",
          message: `must be from 1KB to ${formatByteSize(MAX_BODY_LIMIT_BYTES)}, got ${JSON.stringify(text)}`,
          input: text,
        });
      return bytes;
    })
    .meta({ kind: "size" });
}
