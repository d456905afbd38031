import { createHash } from "node:crypto";

/**
 * JSON with object keys sorted at every level and no whitespace: one text per value, whatever
 * order a file, a client or a codec produced the keys in, so equal configs hash equal.
 */
export function canonicalJson(value: unknown): string {
  const chunks: string[] = [];
  writeAll(value, (s) => chunks.push(s));
  return chunks.join("");
}

/** SHA-256 of a value's canonical JSON, as 64 lower-case hex digits. */
export function canonicalHash(value: unknown): string {
  // Streamed into the hash: a config with a 100,000-lead ledger never exists as one text.
  const hash = createHash("sha256");
  writeAll(value, (s) => hash.update(s, "utf8"));
  return hash.digest("hex");
}

// Text is handed on in pieces of about this many characters.
const CHUNK = 1 << 16;

// A value with no JSON form, and where it sits (built only when one is found).
class NoJsonForm extends Error {
  constructor(
    readonly path: string,
    readonly what: string,
  ) {
    super(what);
  }
}

function writeAll(value: unknown, sink: (text: string) => void): void {
  let buf = "";
  const out = (s: string) => {
    buf += s;
    if (buf.length >= CHUNK) {
      sink(buf);
      buf = "";
    }
  };
  try {
    write(value, out);
  } catch (err) {
    if (err instanceof NoJsonForm) throw new TypeError(`${err.path || "value"}: ${err.what}`);
    throw err;
  }
  if (buf !== "") sink(buf);
}

function write(v: unknown, out: (s: string) => void): void {
  if (v === null) return out("null");
  switch (typeof v) {
    case "boolean":
      return out(v ? "true" : "false");
    case "string":
      return out(JSON.stringify(v));
    case "number":
      // JSON has no NaN or Infinity; writing them as null would give two values one hash.
      if (!Number.isFinite(v)) throw new NoJsonForm("", `${String(v)} has no JSON form`);
      return out(JSON.stringify(v));
    case "object":
      break;
    default:
      throw new NoJsonForm("", `a ${typeof v} has no JSON form`);
  }
  if (Array.isArray(v)) {
    out("[");
    for (let i = 0; i < v.length; i++) {
      if (i > 0) out(",");
      try {
        write(v[i], out);
      } catch (err) {
        throw under(`[${i}]`, err);
      }
    }
    return out("]");
  }
  const keys = Object.keys(v as object).sort(byCodePoint);
  out("{");
  let first = true;
  for (const k of keys) {
    const x = (v as Record<string, unknown>)[k];
    // As JSON.stringify does: an undefined member is no member.
    if (x === undefined) continue;
    if (!first) out(",");
    first = false;
    out(`${JSON.stringify(k)}:`);
    try {
      write(x, out);
    } catch (err) {
      throw under(k, err);
    }
  }
  out("}");
}

// `err` with `step` (a key or `[i]`) put in front of its path when it is a value without JSON
// form; inline try blocks rather than a callback per value, which would be garbage per value.
function under(step: string, err: unknown): unknown {
  if (!(err instanceof NoJsonForm)) return err;
  const sep = err.path === "" || err.path.startsWith("[") ? "" : ".";
  return new NoJsonForm(`${step}${sep}${err.path}`, err.what);
}

// Code-point order, not localeCompare: the hash must not depend on the machine's locale.
function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
