// The credentials a source's calls carry, whatever the auth kind: static ones rendered once, or
// OAuth2 tokens that come and go.
import { createOAuth2Tokens } from "./oauth2-token";
import { authTemplates, type AuthSpec, type ResolvedData, type SourceDef, type Template } from "../source";

/** What one attempt sends: headers, at most one query parameter, and the token it used. */
export interface AttemptCredentials {
  readonly headers: Readonly<Record<string, string>>;
  readonly param: readonly [string, string] | null;
  /** The OAuth2 token in `headers`, so a 401 drops exactly that one; null for static kinds. */
  readonly token: string | null;
  /** The pool credential these are, by stable id; absent or null outside pools. */
  readonly credential?: string | null;
  /** What to check when exactly these are refused (a pool credential's env var or file). */
  readonly advice?: string;
}

/** How the calls of one source authenticate. */
export interface RequestAuth {
  /** True when a refused credential can be replaced (OAuth2), so a 401 is worth one more try. */
  readonly refreshable: boolean;
  /**
   * The credentials of the next attempt (for a pool: of `credential`, the one the limiter
   * admitted the call for); rejects with a MachinaError when none can be had.
   */
  credentials(credential?: string): Promise<AttemptCredentials>;
  /** How many credentials a pool holds, so a refused one can be replaced; absent or 0 outside pools. */
  readonly poolSize?: number;
  /** The upstream answered 401 to `used`: the next {@link RequestAuth.credentials} will not send it again. */
  refused(used: AttemptCredentials): void;
  /** What to check when the credentials are refused, e.g. `check the API key supplied by env var X`. */
  readonly advice: string;
  /** Everything to scrub from text that may reach a log or a reply: secret data and live tokens. */
  secrets(): readonly string[];
}

/** Options of {@link createRequestAuth}. */
export interface RequestAuthOptions {
  readonly timeoutMs: number;
  readonly now: () => number;
}

/** Builds the auth of `def`; static credentials are rendered here, once. */
export function createRequestAuth(
  def: SourceDef,
  data: ResolvedData,
  render: (t: Template) => string,
  opts: RequestAuthOptions,
): RequestAuth {
  const auth = def.manager.auth;
  const origins = credentialOrigins(auth, data);
  const advice = adviceFor(def, auth, origins);
  if (auth?.type !== "oauth2") {
    const fixed = Promise.resolve({ ...staticParts(auth, render), token: null });
    return {
      refreshable: false,
      credentials: () => fixed,
      refused: () => undefined,
      advice,
      secrets: () => data.secrets,
    };
  }
  const tokens = createOAuth2Tokens({
    source: def.name,
    origin: def.origin,
    spec: auth,
    render,
    secrets: data.secrets,
    credentialHint: origins.length === 0 ? `manager.auth` : origins.join(" and "),
    timeoutMs: opts.timeoutMs,
    now: opts.now,
  });
  return {
    refreshable: true,
    async credentials() {
      const token = await tokens.get();
      return { headers: { authorization: `Bearer ${token}` }, param: null, token };
    },
    refused(used) {
      if (used.token !== null) tokens.invalidate(used.token);
    },
    advice,
    secrets() {
      const token = tokens.current();
      return token === null ? data.secrets : [...data.secrets, token];
    },
  };
}

function staticParts(
  auth: Exclude<AuthSpec, { type: "oauth2" }> | null,
  render: (t: Template) => string,
): { headers: Record<string, string>; param: [string, string] | null } {
  if (auth === null) return { headers: {}, param: null };
  if (auth.type === "bearer") return { headers: { authorization: `Bearer ${render(auth.token)}` }, param: null };
  if (auth.type === "basic") {
    const token = Buffer.from(`${render(auth.username)}:${render(auth.password)}`).toString("base64");
    return { headers: { authorization: `Basic ${token}` }, param: null };
  }
  const value = render(auth.value);
  return auth.header !== null
    ? { headers: { [auth.header]: value }, param: null }
    : { headers: {}, param: [auth.param as string, value] };
}

// Where the credentials' data come from (env var X, file Y), never their values.
function credentialOrigins(auth: AuthSpec | null, data: ResolvedData): string[] {
  // Extra OAuth2 form params (an audience, say) are not what a refusal asks the operator to check.
  const refs = authTemplates(auth)
    .filter(([path]) => !path.startsWith("params."))
    .flatMap(([, t]) => t.refs.map((r) => data.origins[r.path[0]]));
  return [...new Set(refs.filter((o) => o !== undefined))];
}

// Says where the refused credentials come from, so the operator knows which secret to fix.
function adviceFor(def: SourceDef, auth: AuthSpec | null, origins: readonly string[]): string {
  if (auth === null)
    return `the source sends no credentials; set manager.type to http-auth and add manager.auth in ${def.origin}`;
  const what = {
    api_key: "API key",
    bearer: "bearer token",
    basic: "username/password",
    oauth2: "OAuth2 client credentials and scopes",
  }[auth.type];
  return origins.length === 0
    ? `check the ${what} in manager.auth of ${def.origin}`
    : `check the ${what} supplied by ${origins.join(" and ")}`;
}
