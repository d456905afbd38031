/** One link of an RFC 8288 `Link` header: its target as written, and its parameters. */
export interface LinkValue {
  /** The URI reference between `<` and `>`, not yet resolved. */
  readonly target: string;
  /** Parameters by lower-cased name; only the first of a repeated name counts (RFC 8288 §3). */
  readonly params: ReadonlyMap<string, string>;
}

/**
 * Parses a `Link` header field value (several header lines joined with `,` included). Lenient
 * where servers are sloppy: an element that does not start with `<` is skipped rather than
 * failing the whole header, and unquoted parameter values may hold any character but `;`/`,`.
 */
export function parseLinkHeader(value: string): LinkValue[] {
  const out: LinkValue[] = [];
  const n = value.length;
  let i = 0;
  const skipSpace = () => {
    while (i < n && (value[i] === " " || value[i] === "\t")) i++;
  };
  // Moves past the next `,` outside quotes and angle brackets: the end of a malformed element.
  const skipElement = () => {
    let quoted = false;
    let bracket = false;
    for (; i < n; i++) {
      const c = value[i];
      if (quoted) {
        if (c === "\\") i++;
        else if (c === '"') quoted = false;
      } else if (bracket) {
        if (c === ">") bracket = false;
      } else if (c === '"') quoted = true;
      else if (c === "<") bracket = true;
      else if (c === ",") {
        i++;
        return;
      }
    }
  };
  const bare = (stop: string) => {
    const from = i;
    while (i < n && !stop.includes(value[i])) i++;
    return value.slice(from, i).trim();
  };
  const quotedString = () => {
    let s = "";
    for (i++; i < n && value[i] !== '"'; i++) {
      if (value[i] === "\\" && i + 1 < n) i++;
      s += value[i];
    }
    i++;
    return s;
  };

  while (i < n) {
    skipSpace();
    if (i >= n) break;
    if (value[i] === ",") {
      i++;
      continue;
    }
    if (value[i] !== "<") {
      skipElement();
      continue;
    }
    const close = value.indexOf(">", i + 1);
    if (close < 0) break;
    const target = value.slice(i + 1, close).trim();
    i = close + 1;
    const params = new Map<string, string>();
    for (;;) {
      skipSpace();
      if (value[i] !== ";") break;
      i++;
      skipSpace();
      const name = bare("=;, \t").toLowerCase();
      skipSpace();
      let v = "";
      if (value[i] === "=") {
        i++;
        skipSpace();
        v = value[i] === '"' ? quotedString() : bare(";,");
      }
      if (name !== "" && !params.has(name)) params.set(name, v);
    }
    skipSpace();
    if (i < n && value[i] !== ",") skipElement();
    out.push({ target, params });
  }
  return out;
}

/** The relation types of a link: its `rel` split on whitespace, lower-cased (they compare case-insensitively). */
export function relationsOf(link: LinkValue): string[] {
  const rel = link.params.get("rel");
  return rel === undefined
    ? []
    : rel
        .toLowerCase()
        .split(/\s+/)
        .filter((r) => r !== "");
}

/** Target of the first link with relation `rel` (default `next`), or null when there is none. */
export function linkTarget(header: string | null, rel = "next"): string | null {
  if (header === null || header.trim() === "") return null;
  const link = parseLinkHeader(header).find((l) => relationsOf(l).includes(rel));
  return link === undefined || link.target === "" ? null : link.target;
}
