// Caches of serialized values: null, memory (LRU by size) and ttl kinds, their component kind, sizes.
export { CACHE_KINDS, DEFAULT_MAX_BYTES } from "./cache";
export type { Cache, CacheKindName, CacheSpec, CacheStats, EvictListener, EvictReason, SetOptions } from "./cache";
export { createCache } from "./create-cache";
export { serialize, deserialize } from "./serializer";
export { parseSize, sizeProblem, formatSize, SIZE_EXAMPLES } from "@machina/config";
export { sizeField } from "./size-field";
export { CACHE_KIND, cacheSpecOf } from "./cache-kind";
export type { CacheConfig } from "./cache-kind";
