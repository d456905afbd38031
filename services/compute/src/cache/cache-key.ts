/**
 * The cache key of one request: the computation's name, its args as JSON with object keys
 * sorted at every depth (so `{a, b}` and `{b, a}` share an entry), and the paging.
 */
export function resultKey(name: string, args: unknown, limit: number, page: string): string {
  return `${name}\u0000${canonicalJson(args)}\u0000${limit}\u0000${page}`;
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}
