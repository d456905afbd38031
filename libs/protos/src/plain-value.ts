/** True for a mapping: not null, not a list. */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * A short rendering of a bad value for an error message. `config` words suit YAML files
 * (`nothing`, `a list`, `a mapping`, quoted JSON); `json` words suit wire payloads (`an array`,
 * `an object`, `the string "x"`, `number 5`).
 */
export function describeValue(v: unknown, words: "config" | "json" = "config"): string {
  if (v === null) return "null";
  if (words === "json") {
    if (Array.isArray(v)) return "an array";
    if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
    if (typeof v === "object") return "an object";
    return `${typeof v} ${String(v)}`;
  }
  if (v === undefined) return "nothing";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "bigint") return `${v}`;
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
