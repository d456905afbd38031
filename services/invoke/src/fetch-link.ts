import type { JetStreamClient } from "@nats-io/jetstream";
import type { FetchTask } from "@machina/protos";
import type { MeshNames } from "@machina/subjects";
import { publishDurable } from "@machina/runtime";
import type { MeshClient } from "@machina/runtime";
import { isMachinaError } from "@machina/wire";

/** Outcome of publishing one tick's tasks. */
export interface LinkResult {
  /** Tasks new to the stream. */
  published: number;
  /** Tasks the stream already had (same task id within its duplicate window). */
  duplicates: number;
  /** Of the published, those that replaced an older queued task for the same (source, query, lead). */
  superseded: number;
  /** Superseded tasks per source. */
  supersededBySource: Map<string, number>;
}

/**
 * Publishes FetchTasks to the FETCH stream with at most `maxInFlight` unacknowledged publishes,
 * so a large ledger applies backpressure instead of flooding the server. Each task's subject
 * names its (source, query, lead) and the stream keeps one message per subject; a publish that
 * expects the subject empty tells a fresh task from one that supersedes a queued task, at the
 * price of a second publish only for the superseding ones.
 */
export async function publishTasks(
  via: MeshClient | JetStreamClient,
  names: MeshNames,
  tasks: readonly FetchTask[],
  maxInFlight: number,
  sender: string,
): Promise<LinkResult> {
  const result: LinkResult = { published: 0, duplicates: 0, superseded: 0, supersededBySource: new Map() };
  let next = 0;
  const lane = async () => {
    while (next < tasks.length) {
      const task = tasks[next++];
      const subject = names.task.fetch(task.source, task.query, task.lead?.id ?? "");
      let replaced = false;
      let ack;
      try {
        ack = await publishDurable(via, subject, "FetchTask", task, {
          msgID: task.id,
          sender,
          expectEmptySubject: true,
        });
      } catch (err) {
        if (!isMachinaError(err) || err.details.conflict !== true) throw err;
        replaced = true;
        ack = await publishDurable(via, subject, "FetchTask", task, { msgID: task.id, sender });
      }
      if (ack.duplicate) result.duplicates++;
      else {
        result.published++;
        if (replaced) {
          result.superseded++;
          result.supersededBySource.set(task.source, (result.supersededBySource.get(task.source) ?? 0) + 1);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(maxInFlight, tasks.length) }, lane));
  return result;
}
