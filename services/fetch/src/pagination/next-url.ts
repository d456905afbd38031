import { MachinaError } from "@machina/wire";

/** What a next-page URL is checked against, and named in errors by. */
export interface NextUrlScope {
  readonly source: string;
  readonly query: string;
  /** The source file, for the hint in errors. */
  readonly origin: string;
  /** `manager.base_url`: a next URL must stay on its scheme, host and port. */
  readonly baseUrl: string;
  /** Query parameter an api_key credential travels in; stripped so the key is never stored. */
  readonly authParam: string | null;
  /** Where the URL came from, e.g. `the Link header` or `response path links.next`. */
  readonly from: string;
}

/**
 * Resolves a next-page URL (absolute, or relative to the page it came from) and checks it stays
 * on the host of `manager.base_url`: the manager sends the source's credentials with every call,
 * so following a link elsewhere would hand them to whoever the upstream (or an attacker able to
 * shape its answers) names. The fragment is dropped, and so is an echoed api_key parameter (the
 * manager adds the current one), so what is kept as resume progress holds no secret.
 */
export function resolveNextUrl(raw: string, current: string, scope: NextUrlScope): string {
  let url: URL;
  try {
    url = new URL(raw, current);
  } catch {
    throw new MachinaError(
      "UPSTREAM",
      // The value itself is left out: an upstream may echo anything into it, a key included.
      `query ${scope.source}.${scope.query}: the next page URL from ${scope.from} is not a URL; check paginate in ${scope.origin}`,
      { retryable: false, details: { source: scope.source, query: scope.query } },
    );
  }
  const base = new URL(scope.baseUrl);
  if (url.protocol !== base.protocol || url.host !== base.host) {
    // Only the origin is named: the rest of a foreign URL may carry anything.
    const where = url.protocol === "http:" || url.protocol === "https:" ? url.origin : url.protocol;
    throw new MachinaError(
      "UPSTREAM",
      `query ${scope.source}.${scope.query}: the next page URL from ${scope.from} points at ${where}, not ${base.origin} (manager.base_url); pagination only follows URLs on the source's own host, so its credentials never travel elsewhere. If the API really moved, change manager.base_url in ${scope.origin}`,
      { retryable: false, details: { source: scope.source, query: scope.query, host: where } },
    );
  }
  if (url.username !== "" || url.password !== "") {
    throw new MachinaError(
      "UPSTREAM",
      `query ${scope.source}.${scope.query}: the next page URL from ${scope.from} carries user credentials; pagination refuses it (credentials come from manager.auth in ${scope.origin})`,
      { retryable: false, details: { source: scope.source, query: scope.query } },
    );
  }
  url.hash = "";
  // Only when present: rewriting the query string re-encodes it, which some cursors do not survive.
  if (scope.authParam !== null && url.searchParams.has(scope.authParam)) url.searchParams.delete(scope.authParam);
  return url.href;
}
