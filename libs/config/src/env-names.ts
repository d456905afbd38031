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
  // Own keys only, defined rather than assigned: a `__proto__` part must never walk into (and
  // write to) Object.prototype.
  const put = (target: Record<string, unknown>, k: string, v: unknown) =>
    Object.defineProperty(target, k, { value: v, enumerable: true, writable: true, configurable: true });
  for (const p of parts.slice(0, -1)) {
    const cur = Object.hasOwn(o, p) ? o[p] : undefined;
    if (cur === null || typeof cur !== "object" || Array.isArray(cur)) put(o, p, {});
    o = o[p] as Record<string, unknown>;
  }
  put(o, parts[parts.length - 1], value);
}

/** Reads a dotted path of a plain object (own keys only). */
export function getPath(obj: unknown, keyPath: string): unknown {
  let o = obj;
  for (const p of keyPath.split(".")) {
    if (o === null || typeof o !== "object" || !Object.hasOwn(o, p)) return undefined;
    o = (o as Record<string, unknown>)[p];
  }
  return o;
}
