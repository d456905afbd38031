// The auth of a source with a credential pool: one RequestAuth per credential, each rendering
// manager.auth with that credential's data; the limiter says which one a call uses.
import { MachinaError } from "@machina/wire";
import { createRequestAuth, type RequestAuth, type RequestAuthOptions } from "./request-auth";
import { joinData, type ResolvedData, type SourceDef, type Template } from "../source";

/** Renders a credential template from a given set of data values. */
export type RenderWith = (values: Readonly<Record<string, string>>) => (t: Template) => string;

/**
 * The auth of `def`: a pooled one when the source has a pool, else {@link createRequestAuth}
 * with `render`. Every credential's secrets are scrubbed from whatever any of them returns.
 */
export function createSourceAuth(
  def: SourceDef,
  data: ResolvedData,
  render: (t: Template) => string,
  renderWith: RenderWith,
  opts: RequestAuthOptions,
): RequestAuth {
  const pool = data.credentials ?? [];
  if (def.pool === null || pool.length === 0) return createRequestAuth(def, data, render, opts);
  const members = new Map<string, RequestAuth>();
  for (const c of pool) {
    const values = joinData(data.values, c.values);
    const own: ResolvedData = { ...data, values, origins: { ...data.origins, ...c.origins } };
    members.set(c.id, createRequestAuth(def, own, renderWith(values), opts));
  }
  const first = members.values().next().value as RequestAuth;
  return {
    refreshable: first.refreshable,
    poolSize: members.size,
    async credentials(credential) {
      const m = credential === undefined ? undefined : members.get(credential);
      if (m === undefined)
        throw new MachinaError(
          "INTERNAL",
          `source ${def.name} has a credential pool but the call was admitted for ${credential === undefined ? "no credential" : `credential ${credential}, which the pool does not hold`}; the limiter and the fetcher were given different sources`,
          { retryable: false, details: { source: def.name } },
        );
      return { ...(await m.credentials()), credential, advice: m.advice };
    },
    refused(used) {
      if (typeof used.credential === "string") members.get(used.credential)?.refused(used);
    },
    advice: `check the credentials of the pool in ${def.origin}`,
    secrets() {
      return [...new Set([...members.values()].flatMap((m) => m.secrets()))];
    },
  };
}
