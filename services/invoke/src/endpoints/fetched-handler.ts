import { defineWorker } from "@machina/runtime";
import type { GroupPublisher, ServiceContext, WorkerDef } from "@machina/runtime";
import type { RecordBatch } from "@machina/protos";

// FETCHED messages handled at once: enough that the batches they split into form large groups.
const HANDLER_LANES = 32;

/** The FETCHED handler: splits each answer by entity type and routes the batches to AGGREGATE. */
export function fetchedHandler(
  ctx: Pick<ServiceContext<unknown>, "names">,
  toAggregate: GroupPublisher<"RecordBatches", RecordBatch>,
): WorkerDef {
  const { names } = ctx;
  return defineWorker({
    name: "handler",
    stream: "FETCHED",
    durable: names.consumers.fetched,
    filter: names.streamSubjects.FETCHED,
    message: "QueryResponses",
    concurrency: HANDLER_LANES,
    async handle(msg, { timing }) {
      const stamp = timing();
      const stored: Promise<void>[] = [];
      for (const resp of msg.responses) {
        const taskId = resp.taskId || resp.requestId;
        const fetchedAt = resp.meta?.end || Date.now();
        for (const [type, set] of Object.entries(resp.data?.types ?? {})) {
          if (!set.records.length) continue;
          const batch = {
            // A paginated task answers once per page, each with its own request id
            // (`<task>:p<n>`); elsewhere the request id is the task id.
            id: `${resp.requestId || taskId}:${type}`,
            type,
            source: resp.source,
            query: resp.query,
            taskId,
            fetchedAt,
            records: set.records,
            // One batch holds all records of its type in the answer, so positions start at 0.
            firstSeq: 0,
            // An incremental answer's cursor goes with the records it counts, for data to move once they are stored.
            ...(isCursorOf(resp.cursor, type) ? { cursor: resp.cursor } : {}),
          };
          stored.push(toAggregate.publish(names.task.aggregate(type), batch, stamp));
        }
      }
      await Promise.all(stored);
    },
  });
}

// The cursor mark names the one type whose records carry the cursor field.
function isCursorOf(mark: unknown, type: string): boolean {
  return mark !== null && typeof mark === "object" && (mark as { type?: unknown }).type === type;
}
