import { CACHE_KIND, cacheSpecOf } from "@machina/cache";
import type { CacheSpec } from "@machina/cache";
import type { ComponentDoc } from "@machina/config";
import { MachinaError } from "@machina/wire";

/**
 * The cache `compute.cache` names among the `compute/caches` components: "none" caches nothing,
 * an absent `results` means a 512M memory cache, any other absent name is BAD_REQUEST naming the
 * setting. What setup, a live head and the check of a patch all choose by.
 */
export function chooseCacheSpec(cacheName: string, docs: readonly ComponentDoc[]): CacheSpec {
  const caches = docs.map((d) => CACHE_KIND.parseDoc(d));
  const chosen = caches.find((c) => c.name === cacheName);
  if (chosen === undefined && cacheName !== "none" && cacheName !== "results")
    throw new MachinaError(
      "BAD_REQUEST",
      `compute.cache: no ${CACHE_KIND.kind}/${cacheName}.yaml (caches: ${caches.map((c) => c.name).join(", ") || "none"}); write the file or set compute.cache to one of them, or to "none"`,
      { details: { field: "compute.cache" } },
    );
  if (cacheName === "none") return { kind: "null" };
  return chosen === undefined ? { kind: "memory" } : cacheSpecOf(chosen.value);
}
