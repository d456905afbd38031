import { Match, MsgHdrsImpl } from "@nats-io/nats-core";

// nats-core decodes every received message's headers (on first read of `msg.headers`) with a
// TextDecoder, a split, a slice and a map over the lines, and an `append` per header that
// searches the keys it has so far; each `get` then lists and filters every key. Per request that
// was 6–7 % of a responder's CPU and as much of a caller's. The decoder here reads the common
// case, plain ASCII headers without a status line, straight into the same MsgHdrsImpl map, and
// hands everything else (a status such as `NATS/1.0 503`, non-ASCII bytes, a key or value
// nats-core would refuse) to nats-core's own decoder, which then decodes or throws as before.

const HEADER = "NATS/1.0";
const CR = 13;
const LF = 10;
const COLON = 58;

/** Headers as nats-core decodes them, with an exact-match `get`/`has` that looks the key up directly. */
class DecodedHeaders extends MsgHdrsImpl {
  // nats-core declares get's match as exact only, though it implements every Match.
  override get(k: string, match: "exact" = Match.Exact): string {
    if (match !== Match.Exact) return super.get(k, match);
    const v = this.headers.get(k);
    return v ? v[0] : "";
  }

  override has(k: string, match: Match = Match.Exact): boolean {
    return match === Match.Exact ? this.headers.has(k) : super.has(k, match);
  }
}

/** Header bytes of the common shape as a DecodedHeaders; null when nats-core's decoder must decide. */
export function decodePlainHeaders(a: Uint8Array): MsgHdrsImpl | null {
  const n = a.length;
  // "NATS/1.0\r\n" exactly: a status line (code, description) takes the general path.
  if (n < 10 || a[8] !== CR || a[9] !== LF) return null;
  for (let i = 0; i < 8; i++) if (a[i] !== HEADER.charCodeAt(i)) return null;
  const mh = new DecodedHeaders();
  const map = mh.headers;
  let pos = 10;
  while (pos < n) {
    // One line: [pos, eol); eol at the next CR LF (or the end).
    let eol = pos;
    let colon = -1;
    for (; eol < n; eol++) {
      const c = a[eol];
      if (c === CR && eol + 1 < n && a[eol + 1] === LF) break;
      // A lone CR or LF in a value, or any non-ASCII byte: nats-core's decoder decides.
      if (c >= 0x80 || c === CR || c === LF) return null;
      if (c === COLON && colon < 0) colon = eol;
    }
    // A non-empty line without a colon is skipped, as nats-core skips it.
    if (eol > pos && colon >= 0) {
      // Key: printable ASCII without a colon (33..126), as nats-core's append checks.
      if (colon === pos) return null;
      for (let i = pos; i < colon; i++) {
        const c = a[i];
        if (c < 33 || c > 126) return null;
      }
      const key = latin1(a, pos, colon);
      let vs = colon + 1;
      let ve = eol;
      while (vs < ve && isSpace(a[vs])) vs++;
      while (ve > vs && isSpace(a[ve - 1])) ve--;
      const value = latin1(a, vs, ve);
      const vals = map.get(key);
      if (vals) vals.push(value);
      else map.set(key, [value]);
    }
    pos = eol + 2;
  }
  return mh;
}

const latin1Slice = Buffer.prototype.latin1Slice;

// ASCII bytes as text: Buffer's latin1 slice works on any Uint8Array and is far cheaper than a
// TextDecoder call or building the string a character at a time.
function latin1(a: Uint8Array, start: number, end: number): string {
  return latin1Slice.call(a, start, end);
}

// What String.prototype.trim removes among ASCII bytes (the rest is non-ASCII, refused above).
function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

let installed = false;

/**
 * Makes nats-core decode received headers with {@link decodePlainHeaders} first (process-wide,
 * idempotent); returns whether it could (false for a nats-core without the static decoder).
 */
export function useFastHeaderDecoding(): boolean {
  if (installed) return true;
  const cls = MsgHdrsImpl as unknown as { decode?: (a: Uint8Array) => MsgHdrsImpl };
  const general = cls.decode;
  if (typeof general !== "function") return false;
  cls.decode = (a: Uint8Array) => decodePlainHeaders(a) ?? general.call(MsgHdrsImpl, a);
  installed = true;
  return true;
}
