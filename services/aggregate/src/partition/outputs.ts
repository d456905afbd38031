import type { RecordBatches } from "@machina/protos";
import { publishDurable } from "@machina/runtime";
import type { MeshClient } from "@machina/runtime";
import type { MeshNames } from "@machina/subjects";
import type { PartitionState, PassedOn } from "./partition-state";

/** What publishing a partition's output needs. */
export interface OutputDeps {
  client: MeshClient;
  names: MeshNames;
  /** Machina-Sender of what is published. */
  sender: string;
}

// Batches per STORE message of forward_fill output.
const PASSED_PER_MESSAGE = 128;

/**
 * Publishes the outbox entries committed but not yet published, in order, and records each as
 * published (the next commit stores that). Each has its own message id — the state's lifetime
 * and the entry's number — so one published again after a crash is dropped by STORE.
 */
export async function publishOutbox(
  deps: OutputDeps,
  type: string,
  partition: number,
  state: PartitionState<unknown>,
): Promise<void> {
  while (state.unpublished.length > 0) {
    const o = state.unpublished[0];
    await publishDurable(
      deps.client,
      deps.names.task.store(type),
      "RecordBatches",
      { batches: o.batches },
      { msgID: `agg:${type}:${partition}:${state.checkpoint.life}:${o.n}`, sender: deps.sender },
    );
    state.unpublished.shift();
    state.checkpoint.pub = Math.max(state.checkpoint.pub, o.n + 1);
  }
}

/**
 * Publishes records passed on (forward_fill), one STORE message per input message (or the part
 * of it one commit covers), its batches as they came. The ids follow from the input's position,
 * so a replay after a crash publishes the same messages under the same ids.
 */
export async function publishPassed(
  deps: OutputDeps,
  type: string,
  partition: number,
  passed: PassedOn[],
): Promise<void> {
  if (passed.length === 0) return;
  const byMessage = new Map<string, PassedOn[]>();
  for (const p of passed) {
    const streamSeq = p.rec.position.slice(0, p.rec.position.indexOf("."));
    const list = byMessage.get(streamSeq);
    if (list === undefined) byMessage.set(streamSeq, [p]);
    else list.push(p);
  }
  const sends: Promise<unknown>[] = [];
  for (const list of byMessage.values()) {
    const batches = regroup(list);
    for (let c = 0; c < batches.length; c += PASSED_PER_MESSAGE) {
      sends.push(
        publishDurable(
          deps.client,
          deps.names.task.store(type),
          "RecordBatches",
          { batches: batches.slice(c, c + PASSED_PER_MESSAGE) },
          { msgID: `ff:${type}:${partition}:${list[0].rec.position}:${c}`, sender: deps.sender },
        ),
      );
    }
  }
  await Promise.all(sends);
}

// Passed-on records back into batches: consecutive records of one input batch form one batch,
// which keeps the input's rows (first_seq) and, when it holds the whole input batch, its id.
function regroup(list: PassedOn[]): RecordBatches["batches"] {
  const out: RecordBatches["batches"] = [];
  let current: { seq: number; batch: RecordBatches["batches"][number]; input: PassedOn["rec"] } | undefined;
  const close = () => {
    if (current === undefined) return;
    const { batch, input } = current;
    const whole = batch.firstSeq === (input.batch.firstSeq || 0) && batch.records.length === input.batchSize;
    if (!whole) batch.id = `${input.batch.id}@${batch.firstSeq}`;
  };
  for (const p of list) {
    if (current !== undefined && current.input.batch.id === p.rec.batch.id && p.rec.seq === current.seq + 1) {
      current.batch.records.push(p.record);
      current.seq = p.rec.seq;
      continue;
    }
    close();
    current = { seq: p.rec.seq, batch: { ...p.rec.batch, records: [p.record], firstSeq: p.rec.seq }, input: p.rec };
    out.push(current.batch);
  }
  close();
  return out;
}
