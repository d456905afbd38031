import { MachinaError } from "@machina/wire";

/**
 * Parses a config key: a JSON pointer (`/fetch/sources/sitestats/limiter/windows/0/limit`) or a
 * dotted key with list indexes (`fetch.sources.sitestats.limiter.windows[0].limit`). Empty: the
 * whole document.
 */
export function parseKey(key: string): string[] {
  if (key === "" || key === "/") return [];
  if (key.startsWith("/")) return key.slice(1).split("/").map(unescapeToken);
  const out: string[] = [];
  for (const part of key.split(".")) {
    const m = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    if (m === null || (m[1] === "" && m[2] === ""))
      throw new MachinaError(
        "BAD_REQUEST",
        `key "${key}": "${part}" is not a key part (use a JSON pointer for odd keys)`,
        {
          retryable: false,
          details: { key },
        },
      );
    if (m[1] !== "") out.push(m[1]);
    for (const idx of m[2].matchAll(/\[(\d+)\]/g)) out.push(idx[1]);
  }
  return out;
}

/** The JSON pointer of a token list. */
export function toPointer(tokens: readonly string[]): string {
  return tokens.map((t) => `/${t.replace(/~/g, "~0").replace(/\//g, "~1")}`).join("");
}

function unescapeToken(t: string): string {
  return t.replace(/~1/g, "/").replace(/~0/g, "~");
}

/** The value at `tokens` (own keys and list indexes only), or undefined. */
export function valueAt(doc: unknown, tokens: readonly string[]): unknown {
  let o = doc;
  for (const t of tokens) {
    if (Array.isArray(o)) {
      if (!/^\d+$/.test(t) || Number(t) >= o.length) return undefined;
      o = o[Number(t)];
    } else if (o !== null && typeof o === "object" && Object.hasOwn(o, t)) {
      o = (o as Record<string, unknown>)[t];
    } else return undefined;
  }
  return o;
}

/** True when one path is the other or lies inside it. */
export function overlaps(a: readonly string[], b: readonly string[]): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}
