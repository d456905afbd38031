/** SCREAMING_SNAKE form of a path part: `baseUrl` and `base-url` both become `BASE_URL`. */
export function screamingSnake(part: string): string {
  return part
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/[^A-Za-z0-9]+/g, "_")
    .toUpperCase();
}

/** Env var name for a key path under a prefix, e.g. (`MACHINA_FETCH`, `nats.url`) → `MACHINA_FETCH_NATS_URL`. */
export function envName(prefix: string, keyPath: string): string {
  return [prefix, ...keyPath.split(".").map(screamingSnake)].join("_");
}

/** Every leaf path of a plain object, dotted. */
export function leafPaths(obj: unknown, base = ""): string[] {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) return base ? [base] : [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
    out.push(...leafPaths(v, base ? `${base}.${k}` : k));
  }
  return out;
}

/** Sets a dotted path in a plain object, creating parents. */
export function setPath(obj: Record<string, unknown>, keyPath: string, value: unknown): void {
  const parts = keyPath.split(".");
  let o = obj;
  for (const p of parts.slice(0, -1)) {
    if (o[p] === null || typeof o[p] !== "object" || Array.isArray(o[p])) o[p] = {};
    o = o[p] as Record<string, unknown>;
  }
  o[parts[parts.length - 1]] = value;
}

/** Reads a dotted path of a plain object. */
export function getPath(obj: unknown, keyPath: string): unknown {
  let o = obj;
  for (const p of keyPath.split(".")) {
    if (o === null || typeof o !== "object") return undefined;
    o = (o as Record<string, unknown>)[p];
  }
  return o;
}
