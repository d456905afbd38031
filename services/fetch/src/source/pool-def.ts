import type * as z from "zod";
import { componentError } from "@machina/config";
import type { poolSchema, PoolWindowValue } from "./pool-schema";
import type { RateWindow } from "./source-def";

/** Where one secret of a pool credential comes from. */
export type PoolSecretSpec =
  { readonly kind: "env"; readonly name: string } | { readonly kind: "file"; readonly path: string };

/** A named credential: the data values `manager.auth` reads, each from env or a file. */
export interface PoolCredentialSpec {
  readonly name: string;
  readonly data: Readonly<Record<string, PoolSecretSpec>>;
}

/** A file listing credentials, one per line, each supplying the data value `data`. */
export interface PoolListSpec {
  readonly file: string;
  readonly data: string;
}

/**
 * A source's credential pool: its credentials, how long a refused one rests, and the windows
 * they share. The source's declared `limiter` windows hold per credential.
 */
export interface PoolSpec {
  readonly credentials: readonly PoolCredentialSpec[];
  readonly lists: readonly PoolListSpec[];
  /** The data names every credential supplies; `{{data.<name>}}` reads the admitted credential's. */
  readonly names: readonly string[];
  readonly benchMs: number;
  /** Windows all credentials share together. */
  readonly windows: readonly RateWindow[];
}

type PoolValue = NonNullable<z.output<ReturnType<typeof poolSchema<z.ZodType<PoolWindowValue>>>>>;

/**
 * Compiles `pool` (absent: null). Every credential supplies the same data names, which are not
 * also declared under `data`, and the source must authenticate (`manager.auth`).
 */
export function poolOf(
  raw: PoolValue | undefined,
  origin: string,
  data: Readonly<Record<string, unknown>>,
  auth: unknown,
): PoolSpec | null {
  if (raw === undefined) return null;
  if (auth === null || auth === undefined)
    throw componentError(
      origin,
      "pool",
      "needs manager.type http-auth and manager.auth: the pool's credentials are what manager.auth sends",
    );
  const credentials: PoolCredentialSpec[] = Object.entries(raw.credentials).map(([name, d]) => ({
    name,
    data: Object.fromEntries(
      Object.entries(d).map(([k, s]) => [
        k,
        s.env !== undefined ? { kind: "env", name: s.env } : { kind: "file", path: s.file ?? "" },
      ]),
    ),
  }));
  const lists: PoolListSpec[] = raw.lists.map((l) => ({ file: l.file, data: l.data }));
  const names = [...new Set([...credentials.flatMap((c) => Object.keys(c.data)), ...lists.map((l) => l.data)])].sort();
  for (const c of credentials) {
    const missing = names.filter((n) => !Object.hasOwn(c.data, n));
    if (missing.length > 0)
      throw componentError(
        origin,
        `pool.credentials.${c.name}`,
        `lacks ${missing.join(", ")}; every credential of a pool supplies the same data (${names.join(", ")})`,
      );
  }
  if (lists.length > 0 && names.length > 1)
    throw componentError(
      origin,
      "pool.lists",
      `a list supplies one value per line, but the pool's credentials supply ${names.join(", ")}; declare them under pool.credentials`,
    );
  for (const n of names)
    if (Object.hasOwn(data, n))
      throw componentError(origin, `data.${n}`, "is supplied by each credential of the pool; remove it from data");
  return {
    credentials,
    lists,
    names,
    benchMs: raw.bench,
    windows: raw.windows.map((w) => ({ limit: w.limit, perMs: w.per, align: w.align })),
  };
}

/**
 * True when `{{data.<name>}}` at `path` reads a pool value, which only `manager.auth` may do
 * (elsewhere it would send one credential's secret with another's calls); throws there.
 */
export function isPoolDataRef(pool: PoolSpec | null, origin: string, name: string, path: string): boolean {
  if (pool === null || !pool.names.includes(name)) return false;
  if (!path.startsWith("manager.auth."))
    throw componentError(
      origin,
      path,
      `{{data.${name}}} is supplied per credential by pool; only manager.auth may use it`,
    );
  return true;
}
