// Driving the fetch service's durable path in tests: a FetchTask published as invoke would, and a
// task's answers read back from FETCHED in stream order.
import { jetstream } from "@nats-io/jetstream";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Lead, QueryResponse } from "@machina/protos";
import { publishDurable } from "@machina/runtime";
import type { MeshNames } from "@machina/subjects";
import { decodeBody, encodingOf } from "@machina/wire";

/** Publishes FetchTask `id` for `source`.`query` and `lead` (its Nats-Msg-Id the task id); resolves with the id. */
export async function publishFetchTask(
  nc: NatsConnection,
  names: MeshNames,
  task: { id: string; source: string; query: string; lead: Lead },
): Promise<string> {
  const { id, source, query, lead } = task;
  await publishDurable(
    jetstream(nc),
    names.task.fetch(source, query, lead.id),
    "FetchTask",
    { id, source, query, lead, trigger: "test", tick: Date.now(), createdAt: Date.now() },
    { msgID: id },
  );
  return id;
}

/** Every answer of task `taskId` on FETCHED, in stream order, with its message's Nats-Msg-Id. */
export async function fetchedAnswers(
  jsm: JetStreamManager,
  names: MeshNames,
  taskId: string,
): Promise<{ msgId: string; resp: QueryResponse }[]> {
  const stream = names.streams.FETCHED;
  const info = await jsm.streams.info(stream);
  const out: { msgId: string; resp: QueryResponse }[] = [];
  for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
    if (m === null) continue;
    for (const resp of decodeBody("QueryResponses", m.data, encodingOf(m.header)).responses)
      if (resp.taskId === taskId) out.push({ msgId: m.header.get("Nats-Msg-Id"), resp });
  }
  return out;
}
