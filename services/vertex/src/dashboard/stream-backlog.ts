import type { JetStreamManager } from "@nats-io/jetstream";
import type { MeshNames } from "@machina/subjects";
import type { DashboardLag } from "./dashboard-snapshot";

// The work streams whose consumers can fall behind; the DLQ is a store, counted on its own.
const WORK_STREAMS = ["FETCH", "FETCHED", "AGGREGATE", "STORE"] as const;

// A network whose services never started has no streams yet: that is no backlog, not a failure.
function isMissing(err: unknown): boolean {
  const e = err as { message?: string; api_error?: { err_code?: number } };
  return e?.api_error?.err_code === 10059 || /not found/i.test(String(e?.message ?? ""));
}

/** Pending and ack-pending messages of every durable consumer on the pipeline's work streams. */
export async function readConsumerLag(jsm: JetStreamManager, names: MeshNames): Promise<DashboardLag[]> {
  const perStream = await Promise.all(
    WORK_STREAMS.map(async (key) => {
      const stream = names.streams[key];
      const rows: DashboardLag[] = [];
      try {
        for await (const ci of jsm.consumers.list(stream)) {
          rows.push({
            stream,
            durable: ci.config.durable_name ?? ci.name,
            pending: ci.num_pending,
            ackPending: ci.num_ack_pending,
          });
        }
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
      return rows.sort((a, b) => a.durable.localeCompare(b.durable));
    }),
  );
  return perStream.flat();
}

/** Messages and bytes held by the dead-letter stream (zero before it exists). */
export async function readDeadLetterSize(
  jsm: JetStreamManager,
  names: MeshNames,
): Promise<{ messages: number; bytes: number }> {
  try {
    const { state } = await jsm.streams.info(names.streams.DLQ);
    return { messages: state.messages, bytes: state.bytes };
  } catch (err) {
    if (isMissing(err)) return { messages: 0, bytes: 0 };
    throw err;
  }
}
