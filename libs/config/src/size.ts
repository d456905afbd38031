import { describeValue } from "@machina/protos";
import { MachinaError } from "@machina/wire";

// Binary multiples only: a size here is a memory or disk budget, counted in powers of two,
// so `1K`, `1KB` and `1KiB` all mean 1024 bytes rather than making the reader guess which is which.
const UNIT_BYTES = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 } as const;

const SIZE = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(B|iB)?\s*$/;

// The same shape in any letter case, to tell `512m` (a unit in the wrong case) from nonsense.
const SIZE_ANY_CASE = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(b|ib)?\s*$/i;

/** Examples used in every size error message. */
export const SIZE_EXAMPLES = "64K, 512M, 1.5G or 2GiB (binary units: 1K = 1024 bytes)";

/** Why `v` is not a size (null when it is one), worded for a config error. */
export function sizeProblem(v: unknown): string | null {
  if (typeof v === "number") {
    if (Number.isSafeInteger(v) && v >= 0) return null;
    return `expected a whole number of bytes or a size such as ${SIZE_EXAMPLES}, got ${describeValue(v)}`;
  }
  if (typeof v !== "string") return `expected a size such as ${SIZE_EXAMPLES}, got ${describeValue(v)}`;
  const m = SIZE.exec(v);
  if (m === null) {
    const loose = SIZE_ANY_CASE.exec(v);
    if (loose !== null) {
      const fixed = `${loose[1]}${loose[2].toUpperCase()}`;
      return `units are upper case K, M, G or T (binary: 1K = 1024 bytes), got ${JSON.stringify(v)}; write ${fixed}`;
    }
    return `expected a size such as ${SIZE_EXAMPLES}, got ${describeValue(v)}`;
  }
  const bytes = Number(m[1]) * UNIT_BYTES[m[2] as keyof typeof UNIT_BYTES];
  if (!Number.isSafeInteger(bytes)) {
    if (!Number.isFinite(bytes) || bytes > Number.MAX_SAFE_INTEGER)
      return `${JSON.stringify(v)} is too large; write at most 8191T`;
    return `${JSON.stringify(v)} is ${bytes} bytes, not a whole number; write ${Math.round(bytes)} or use a smaller unit`;
  }
  return null;
}

/**
 * Parses a size into bytes: `512M`, `2G`, `1.5G`, `64K`, `512MB`, `2GiB`, `100` (bytes), or a
 * number of bytes. Units are binary (1K = 1024) whichever of `K`, `KB`, `KiB` is written. Throws
 * BAD_REQUEST naming `where` (e.g. `<file>: max_size`) when given; what to write is in the message.
 */
export function parseSize(text: string | number, where?: string): number {
  const problem = sizeProblem(text);
  if (problem !== null)
    throw new MachinaError("BAD_REQUEST", where === undefined ? problem : `${where}: ${problem}`, {
      retryable: false,
      details: { field: where ?? "", value: text },
    });
  if (typeof text === "number") return text;
  const m = SIZE.exec(text) as RegExpExecArray;
  return Number(m[1]) * UNIT_BYTES[m[2] as keyof typeof UNIT_BYTES];
}

/** Formats bytes in the largest binary unit that divides them exactly, e.g. 536870912 → `512M`. */
export function formatSize(bytes: number): string {
  for (const unit of ["T", "G", "M", "K"] as const) {
    if (bytes >= UNIT_BYTES[unit] && bytes % UNIT_BYTES[unit] === 0) return `${bytes / UNIT_BYTES[unit]}${unit}`;
  }
  return `${bytes}`;
}
