import type { MeshClient } from "@machina/runtime";
import type { MeshNames } from "@machina/subjects";
import { isMachinaError } from "@machina/wire";
import type { Collector } from "./collector";
import { seriesName } from "./series-names";
import type { Sample } from "./series-names";

/**
 * Use of every rate window of every source, across all fetch replicas (fetch.quota reads the
 * shared limiter), as it is at the tick. A mesh without fetch running has no quota to sample.
 */
export class QuotaUseCollector implements Collector {
  readonly name = "quota use";

  constructor(
    private readonly client: MeshClient,
    private readonly names: MeshNames,
  ) {}

  async collect(t: number): Promise<Sample[]> {
    let sources: string[];
    try {
      const r = await this.client.request(this.names.fetch.sources, "Empty", {}, "SourcesReply", { timeoutMs: 2000 });
      sources = r.sources.map((s) => s.name);
    } catch (err) {
      if (isMachinaError(err, "UNAVAILABLE")) return [];
      throw err;
    }
    const out: Sample[] = [];
    for (const source of sources) {
      const q = await this.client.request(this.names.fetch.quota, "QuotaRequest", { source }, "QuotaReply", {
        timeoutMs: 2000,
      });
      for (const w of q.windows) {
        out.push({ series: seriesName.quota(source, w.perMs, "usage"), t, value: w.usage });
        if (w.percent !== undefined)
          out.push({ series: seriesName.quota(source, w.perMs, "percent"), t, value: w.percent });
      }
    }
    return out;
  }
}
