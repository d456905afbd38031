import { CACHE_KIND, createCache } from "@machina/cache";
import { codec } from "@machina/protos";
import { addCounter, defineEndpoint, observeGauge } from "@machina/runtime";
import type { ServiceContext, ServiceSpec } from "@machina/runtime";
import { MachinaError } from "@machina/wire";
import { chooseCacheSpec } from "./cache/cache-choice";
import { followInvalidations } from "./cache/invalidation";
import { ResultCache } from "./cache/result-cache";
import { loadCodeComputations } from "./code";
import { BUILTIN_COMPUTATIONS } from "./computations/builtins";
import { ComputationRegistry } from "./computations/registry";
import { ComputeRunner } from "./compute-runner";

/** Compute settings. */
export interface ComputeConfig {
  compute: {
    cache: string;
  };
}

/** The compute service (layer 4): registered computations over clean data, their results cached. */
export const computeService: ServiceSpec<ComputeConfig> = {
  name: "compute",
  version: "0.2.0",
  description: "Answers registered computations over clean data",
  httpPort: 9305,
  components: {
    kinds: [CACHE_KIND.kind, "compute/computations"],
    schemas: [CACHE_KIND],
    validate(set) {
      for (const d of set.docs(CACHE_KIND.kind)) CACHE_KIND.parseDoc(d);
      // Computations are TypeScript modules: the tree holds none, and a patch cannot write one.
      const [code] = set.docs("compute/computations");
      if (code !== undefined)
        throw new MachinaError(
          "BAD_REQUEST",
          `compute/computations/${code.name}: computations are code modules (compute/computations/*.ts); a patch cannot add or change one`,
          { retryable: false, details: { origin: `compute/computations/${code.name}`, field: "" } },
        );
    },
  },
  schema: {
    compute: {
      cache: {
        doc: 'Which compute/caches/<name>.yaml holds results ("none" caches nothing); an absent file means a 512M memory cache.',
        format: String,
        default: "results",
      },
    },
  },
  async setup(ctx: ServiceContext<ComputeConfig>) {
    const { names, client, nc, log, metrics } = ctx;
    const registry = new ComputationRegistry([
      ...BUILTIN_COMPUTATIONS,
      ...(await loadCodeComputations(ctx.configSource)),
    ]);
    const cacheName = ctx.config.compute.cache;
    let spec = chooseCacheSpec(cacheName, ctx.components.docs(CACHE_KIND.kind));
    const invalidated = addCounter(
      metrics,
      "machina_compute_cache_invalidated_total",
      "Cached results dropped because data they read changed, by cause",
      ["cause"],
    );
    const cache = new ResultCache(createCache(spec), (cause, n) => invalidated.inc({ cause }, n));
    observeGauge(metrics, "machina_compute_cache_bytes", "Serialized bytes of results held", () => cache.cache.bytes);
    observeGauge(metrics, "machina_compute_cache_entries", "Results held", () => cache.cache.entries);
    const served = addCounter(metrics, "machina_compute_requests_total", "Computations answered, by name and source", [
      "name",
      "from",
    ]);
    const broadcast = codec("CacheInvalidate");
    const runner = new ComputeRunner(registry, cache, client, names);
    const stopFollowing = followInvalidations(nc, names, cache, log);
    log.info({ computations: registry.names(), cache: { name: cacheName, kind: spec.kind } }, "compute ready");
    const stats = () => {
      const s = cache.stats();
      return {
        kind: cache.cache.kind,
        entries: cache.cache.entries,
        bytes: cache.cache.bytes,
        maxBytes: cache.cache.maxBytes,
        hits: s.hits,
        misses: s.misses,
        evictions: s.evictions,
        invalidations: cache.invalidations,
      };
    };
    return {
      endpoints: [
        defineEndpoint({
          name: "get",
          subject: names.any.computeGet,
          request: "ComputeRequest",
          reply: "ComputeReply",
          description: "Run the computation named by the last subject token with the given args",
          async handler(req, { subject }) {
            const [name] = names.tail(subject, 1);
            const out = await runner.run(name, req.args ?? {}, { limit: req.limit, page: req.page });
            served.inc({ name, from: out.cached ? "cache" : "run" });
            return { name, rows: out.rows, cached: out.cached, next: out.next };
          },
        }),
        defineEndpoint({
          name: "cache-stats",
          subject: names.computeCache("stats"),
          request: "Empty",
          reply: "CacheStats",
          description: "What this replica's result cache holds, its hits, misses, evictions and invalidations",
          async handler() {
            return stats();
          },
        }),
        defineEndpoint({
          name: "cache-drop",
          subject: names.computeCache("drop"),
          request: "CacheInvalidate",
          reply: "CacheStats",
          description:
            "Drops cached results on every replica: all (no type), a type's, or one entity's (type and key); answers this replica's cache after the drop",
          async handler(req) {
            // Dropped here first, so the reply already shows it; the broadcast reaches the others
            // (and this replica again, which finds nothing left to drop).
            const key = req.key != null && Object.keys(req.key).length > 0 ? req.key : null;
            cache.invalidate(req.type, key, "broadcast");
            nc.publish(names.cacheInvalidate, broadcast.encode({ type: req.type, key: req.key ?? {} }));
            return stats();
          },
        }),
      ],
      // A head whose chosen cache would be gone is refused here, in the replica asked.
      checkConfig(set) {
        chooseCacheSpec(cacheName, set.docs(CACHE_KIND.kind));
      },
      // Live: the chosen cache's kind, size and ttl; a changed one starts empty.
      async applyConfig(set) {
        const next = chooseCacheSpec(cacheName, set.docs(CACHE_KIND.kind));
        if (JSON.stringify(next) === JSON.stringify(spec)) return;
        cache.replace(createCache(next));
        spec = next;
        log.info({ cache: { name: cacheName, ...next }, head: set.head }, "result cache replaced");
      },
      async onStop() {
        stopFollowing();
      },
    };
  },
};
