// A small, lenient reader of HTTP structured fields (RFC 8941): lists and dictionaries of items
// with parameters, which is all the IETF RateLimit fields use. Quota headers only ever lower what
// is admitted, so a malformed field is read as absent (null), never guessed at.

/** A bare item: integer or decimal, string, token, byte sequence (as its base64 text) or boolean. */
export type BareItem = number | string | boolean;

/** An item with its parameters (`;key=value`); a parameter without a value is `true`. */
export interface SfItem {
  readonly value: BareItem;
  readonly params: Readonly<Record<string, BareItem>>;
}

class Reader {
  i = 0;
  constructor(readonly s: string) {}

  ws(): void {
    while (this.s[this.i] === " " || this.s[this.i] === "\t") this.i++;
  }

  done(): boolean {
    return this.i >= this.s.length;
  }

  peek(): string {
    return this.s[this.i] ?? "";
  }

  key(): string | null {
    const m = /^[a-z*][a-z0-9_\-.*]*/.exec(this.s.slice(this.i));
    if (m === null) return null;
    this.i += m[0].length;
    return m[0];
  }

  bare(): BareItem | null {
    const rest = this.s.slice(this.i);
    const c = this.peek();
    if (c === '"') return this.string();
    if (c === "?") {
      if (rest[1] !== "0" && rest[1] !== "1") return null;
      this.i += 2;
      return rest[1] === "1";
    }
    if (c === ":") {
      const end = rest.indexOf(":", 1);
      if (end < 0) return null;
      this.i += end + 1;
      return rest.slice(1, end);
    }
    const num = /^-?\d{1,15}(\.\d{1,3})?/.exec(rest);
    if (num !== null) {
      this.i += num[0].length;
      return Number(num[0]);
    }
    const token = /^[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*/.exec(rest);
    if (token === null) return null;
    this.i += token[0].length;
    return token[0];
  }

  private string(): string | null {
    let out = "";
    for (let j = this.i + 1; j < this.s.length; j++) {
      const ch = this.s[j];
      if (ch === "\\") {
        const next = this.s[j + 1];
        if (next !== '"' && next !== "\\") return null;
        out += next;
        j++;
      } else if (ch === '"') {
        this.i = j + 1;
        return out;
      } else out += ch;
    }
    return null;
  }

  params(): Record<string, BareItem> | null {
    const out: Record<string, BareItem> = {};
    while (this.peek() === ";") {
      this.i++;
      this.ws();
      const k = this.key();
      if (k === null) return null;
      let v: BareItem | null = true;
      if (this.peek() === "=") {
        this.i++;
        v = this.bare();
        if (v === null) return null;
      }
      out[k] = v;
    }
    return out;
  }

  item(): SfItem | null {
    // Inner lists carry nothing a quota field uses; they are skipped whole.
    if (this.peek() === "(") {
      const end = this.s.indexOf(")", this.i);
      if (end < 0) return null;
      this.i = end + 1;
      const params = this.params();
      return params === null ? null : { value: "", params };
    }
    const value = this.bare();
    if (value === null) return null;
    const params = this.params();
    return params === null ? null : { value, params };
  }

  // Members are separated by commas; true when another member follows.
  next(): boolean | null {
    this.ws();
    if (this.done()) return false;
    if (this.peek() !== ",") return null;
    this.i++;
    this.ws();
    return this.done() ? null : true;
  }
}

/** Parses a structured-field List; null when the text is not one. */
export function parseSfList(text: string | undefined): SfItem[] | null {
  if (text === undefined) return null;
  const r = new Reader(text.trim());
  const out: SfItem[] = [];
  if (r.done()) return out;
  for (;;) {
    const item = r.item();
    if (item === null) return null;
    out.push(item);
    const more = r.next();
    if (more === null) return null;
    if (!more) return out;
  }
}

/** Parses a structured-field Dictionary; null when the text is not one. */
export function parseSfDictionary(text: string | undefined): Map<string, SfItem> | null {
  if (text === undefined) return null;
  const r = new Reader(text.trim());
  const out = new Map<string, SfItem>();
  if (r.done()) return out;
  for (;;) {
    const k = r.key();
    if (k === null) return null;
    let item: SfItem | null;
    if (r.peek() === "=") {
      r.i++;
      item = r.item();
    } else {
      const params = r.params();
      item = params === null ? null : { value: true, params };
    }
    if (item === null) return null;
    out.set(k, item);
    const more = r.next();
    if (more === null) return null;
    if (!more) return out;
  }
}
