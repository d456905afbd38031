import type { JetStreamManager } from "@nats-io/jetstream";
import type { MeshNames } from "@machina/subjects";
import type { Collector } from "./collector";
import { seriesName } from "./series-names";
import type { Sample } from "./series-names";

/**
 * Lag of every durable consumer on the pipeline streams (messages not yet delivered, and
 * delivered but not acknowledged) and the size of the DLQ, as they are at the tick. Ephemeral
 * consumers (a DLQ scan, a KV watch) have no durable name and are left out.
 */
export class StreamGaugesCollector implements Collector {
  readonly name = "stream gauges";

  constructor(
    private readonly jsm: JetStreamManager,
    private readonly names: MeshNames,
  ) {}

  async collect(t: number): Promise<Sample[]> {
    const out: Sample[] = [];
    for (const [key, stream] of Object.entries(this.names.streams)) {
      let consumers;
      try {
        consumers = await this.jsm.consumers.list(stream).next();
      } catch (err) {
        // A stream not made yet (no service of that stage started) has no lag.
        if (/stream not found/i.test((err as Error).message)) continue;
        throw err;
      }
      for (const c of consumers) {
        if (!c.config.durable_name) continue;
        out.push({ series: seriesName.consumer(stream, c.name, "pending"), t, value: c.num_pending });
        out.push({ series: seriesName.consumer(stream, c.name, "ack_pending"), t, value: c.num_ack_pending });
      }
      if (key === "DLQ") {
        const { state } = await this.jsm.streams.info(stream);
        out.push({ series: seriesName.dlq("messages"), t, value: state.messages });
        out.push({ series: seriesName.dlq("bytes"), t, value: state.bytes });
      }
    }
    return out;
  }
}
