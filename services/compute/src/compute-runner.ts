import type { JsonObject } from "@machina/protos";
import type { MeshClient } from "@machina/runtime";
import type { MeshNames } from "@machina/subjects";
import { resultKey } from "./cache/cache-key";
import type { ResultCache } from "./cache/result-cache";
import type { ComputeDeps, ComputeResult, Paging } from "./computations/define";
import type { ComputationRegistry } from "./computations/registry";
import { DataReads } from "./reads/data-reads";
import { ReadSet } from "./reads/read-set";

/** A computation's answer and whether it came from the cache. */
export interface RunOutcome extends ComputeResult {
  cached: boolean;
}

/** How deep computations may call each other before it is refused as a loop. */
const MAX_DEPTH = 8;

/**
 * Runs computations for compute.get: a cached result when one is valid, else one run per
 * distinct request at a time (concurrent identical requests share it), stored with what it read.
 */
export class ComputeRunner {
  private readonly inFlight = new Map<string, Promise<{ result: ComputeResult; reads: ReadSet }>>();

  constructor(
    private readonly registry: ComputationRegistry,
    private readonly cache: ResultCache,
    private readonly client: MeshClient,
    private readonly names: MeshNames,
  ) {}

  /** Answers `name` over `args`; `reads`, when given, collects what the run read (a nested call). */
  async run(name: string, args: JsonObject, paging: Paging, reads?: ReadSet, depth = 0): Promise<RunOutcome> {
    const computation = this.registry.get(name);
    if (depth > MAX_DEPTH)
      throw new Error(
        `computation "${name}": calls nested deeper than ${MAX_DEPTH}; do computations call each other in a loop?`,
      );
    const key = resultKey(name, args, paging.limit, paging.page);
    if (computation.cacheable) {
      const hit = this.cache.get(key);
      if (hit !== undefined) {
        // A nested hit still depends on what the cached run read, so the caller's entry is
        // dropped with it.
        const read = this.cache.readsFor(key);
        if (reads !== undefined && read !== undefined) reads.merge(read);
        return { ...hit, cached: true };
      }
    }
    let shared = this.inFlight.get(key);
    if (shared === undefined) {
      shared = this.execute(computation.name, key, args, paging, computation.cacheable, depth);
      this.inFlight.set(key, shared);
      void shared.finally(() => this.inFlight.delete(key)).catch(() => undefined);
    }
    const { result, reads: own } = await shared;
    reads?.merge(own);
    return { ...result, cached: false };
  }

  private async execute(
    name: string,
    key: string,
    args: JsonObject,
    paging: Paging,
    cacheable: boolean,
    depth: number,
  ): Promise<{ result: ComputeResult; reads: ReadSet }> {
    const mark = this.cache.begin();
    const reads = new ReadSet();
    const deps: ComputeDeps = {
      data: new DataReads(this.client, this.names, reads),
      call: async (other, otherArgs, otherPaging = { limit: 0, page: "" }) => {
        const { rows, next } = await this.run(other, otherArgs, otherPaging, reads, depth + 1);
        return { rows, next };
      },
    };
    const result = await this.registry.get(name).run(args, deps, paging);
    if (cacheable) this.cache.put(key, result, reads, mark);
    return { result, reads };
  }
}
