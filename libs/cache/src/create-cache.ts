import { CACHE_KINDS, DEFAULT_MAX_BYTES } from "./cache";
import type { Cache, CacheSpec } from "./cache";
import { LruStoreCache } from "./lru-store-cache";
import { NullCache } from "./null-cache";
import { isTtlMs, specError } from "./spec-error";

/**
 * Makes a cache: `null` (stores nothing), `memory` (LRU capped at `maxSize` serialized bytes,
 * optional max age `ttlMs`) or `ttl` (entries live `ttlMs`, also capped at `maxSize`). Throws
 * BAD_REQUEST for an unknown kind, a `maxSize` that is not a whole number of bytes >= 1, or a
 * `ttlMs` that is not a whole number of ms >= 1 (a ttl cache must have one).
 */
export function createCache(spec: CacheSpec): Cache {
  const kind = spec.kind;
  if (kind === "null") return new NullCache();
  if (kind !== "memory" && kind !== "ttl")
    throw specError(`unknown kind ${JSON.stringify(kind)}; expected one of ${CACHE_KINDS.join(", ")}`);
  const maxBytes = spec.maxSize ?? DEFAULT_MAX_BYTES;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1)
    throw specError(`maxSize must be a whole number of bytes >= 1, got ${String(maxBytes)}`);
  if (kind === "ttl" && spec.ttlMs === undefined)
    throw specError("a ttl cache needs ttlMs: how long an entry lives, in ms");
  if (spec.ttlMs !== undefined && !isTtlMs(spec.ttlMs))
    throw specError(`ttlMs must be a whole number of ms >= 1, got ${String(spec.ttlMs)}`);
  return new LruStoreCache({ kind, maxBytes, ttlMs: spec.ttlMs ?? 0 });
}
