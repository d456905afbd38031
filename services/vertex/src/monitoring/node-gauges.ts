import type { NodeInfo } from "@machina/protos";
import type { Collector } from "./collector";
import { seriesName } from "./series-names";
import type { Sample } from "./series-names";

/** CPU, memory and host load of every live instance, as its latest heartbeat gave them. */
export class NodeGaugesCollector implements Collector {
  readonly name = "node gauges";

  constructor(private readonly nodes: () => NodeInfo[]) {}

  async collect(t: number): Promise<Sample[]> {
    const out: Sample[] = [];
    for (const n of this.nodes()) {
      out.push({ series: seriesName.node(n.service, n.id, "cpu_percent"), t, value: n.cpuPercent });
      out.push({ series: seriesName.node(n.service, n.id, "rss_bytes"), t, value: n.rssBytes });
      out.push({ series: seriesName.node(n.service, n.id, "load1"), t, value: n.load1 });
    }
    return out;
  }
}
