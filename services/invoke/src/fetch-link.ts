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

/** What the stream did with one task. */
export interface TaskAck {
  /** The stream already had this task id within its duplicate window and dropped the copy. */
  duplicate: boolean;
  /** The task replaced an older queued task for the same (source, query, lead). */
  superseded: boolean;
}

/**
 * Publishes one FetchTask. Its subject names its (source, query, lead) and the stream keeps one
 * message per subject; a publish that expects the subject empty tells a fresh task from one that
 * supersedes a queued task, at the price of a second publish only for the superseding ones.
 */
export async function publishTask(
  via: MeshClient | JetStreamClient,
  names: MeshNames,
  task: FetchTask,
  sender: string,
  /** Machina-Resources of the task (its query set's `resources`); "" or absent: none. */
  resources = "",
): Promise<TaskAck> {
  const subject = names.task.fetch(task.source, task.query, task.lead?.id ?? "");
  try {
    const ack = await publishDurable(via, subject, "FetchTask", task, {
      msgID: task.id,
      sender,
      resources,
      expectEmptySubject: true,
    });
    return { duplicate: ack.duplicate, superseded: false };
  } catch (err) {
    if (!isMachinaError(err) || err.details.conflict !== true) throw err;
    const ack = await publishDurable(via, subject, "FetchTask", task, { msgID: task.id, sender, resources });
    return { duplicate: ack.duplicate, superseded: !ack.duplicate };
  }
}

/** Publishes FetchTasks with at most `maxInFlight` unacknowledged publishes (see {@link publishTask}). */
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
      const ack = await publishTask(via, names, task, sender);
      if (ack.duplicate) result.duplicates++;
      else {
        result.published++;
        if (ack.superseded) {
          result.superseded++;
          result.supersededBySource.set(task.source, (result.supersededBySource.get(task.source) ?? 0) + 1);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(maxInFlight, tasks.length) }, lane));
  return result;
}
