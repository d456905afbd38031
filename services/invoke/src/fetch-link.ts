import type { JetStreamClient } from "@nats-io/jetstream";
import type { FetchTask } from "@machina/protos";
import type { MeshNames } from "@machina/subjects";
import { publishDurable } from "@machina/runtime";

/** Outcome of publishing one tick's tasks. */
export interface LinkResult {
  published: number;
  duplicates: number;
}

/**
 * Publishes FetchTasks to the FETCH stream with at most `maxInFlight` unacknowledged publishes,
 * so a large ledger applies backpressure instead of flooding the server.
 */
export async function publishTasks(js: JetStreamClient, names: MeshNames, tasks: FetchTask[], maxInFlight: number, sender: string): Promise<LinkResult> {
  const result: LinkResult = { published: 0, duplicates: 0 };
  let next = 0;
  const lane = async () => {
    while (next < tasks.length) {
      const task = tasks[next++];
      const ack = await publishDurable(js, names.task.fetch(task.source), "FetchTask", task, { msgID: task.id, sender });
      if (ack.duplicate) result.duplicates++;
      else result.published++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(maxInFlight, tasks.length) }, lane));
  return result;
}
