import { AckPolicy, DeliverPolicy } from "@nats-io/jetstream";
import type { ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg } from "@nats-io/jetstream";
import type { Logger } from "@machina/log";
import type { RecordBatches } from "@machina/protos";
import { classifyThrown, retryDelayMs, storeDeadLetter } from "@machina/runtime";
import type { MeshClient } from "@machina/runtime";
import type { MeshNames } from "@machina/subjects";
import { MachinaError, decodeBody, encodeBody, encodingOf } from "@machina/wire";
import type { StatefulAggregator } from "../config/aggregator-table";
import type { InRecord, StatefulKind } from "../kinds/kind";
import type { AggregateMetrics } from "../metrics";
import { recordKey } from "./partition-key";
import { PartitionState } from "./partition-state";
import { publishOutbox, publishPassed } from "./outputs";
import type { StateStore } from "./state-store";

/** What a partition runner works with. */
export interface RunnerDeps {
  js: JetStreamClient;
  jsm: JetStreamManager;
  client: MeshClient;
  names: MeshNames;
  log: Logger;
  store: StateStore;
  metrics: AggregateMetrics;
  /** Machina-Sender of what it publishes. */
  sender: string;
  /** Wall clock, epoch ms: fires timeouts while the partition is idle. */
  clock: () => number;
  /** True while this replica may work on the partition (its lease is valid). */
  leaseValid: () => boolean;
}

const NS_PER_MS = 1_000_000;
// Messages taken into one group (applied, committed once, acked).
const GROUP_MESSAGES = 512;
// A quiet partition looks for due timeouts this often.
const IDLE_TICK_MS = 250;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

class SessionEnd extends Error {}

/**
 * Works on one partition of a stateful type while this replica owns it. A session starts by
 * re-creating the partition's durable consumer (so delivery restarts, in stream order, at the
 * oldest unacknowledged message), loading the state, and publishing outbox entries a crash left
 * behind. Then messages are applied in stream order, in groups: every record after the stored
 * position (stream seq and record index) is applied, what fell due is fired, the change — key
 * states, outputs (outbox) and the new position — is stored as one atomic batch, the outputs are
 * published to STORE, and only then are the messages acked. A message that comes again (its ack
 * lost, a crash before it) lies at or before the position and is acked without effect, so every
 * record changes the state exactly once. Any failure ends the session: the next one starts
 * from what is stored.
 */
export class PartitionRunner {
  private stopping = false;
  private running: Promise<void> | undefined;
  private messages: ConsumerMessages | undefined;
  private wake: () => void = () => undefined;
  /** Whether the current session stored a commit. */
  private progressed = false;

  constructor(
    private readonly agg: StatefulAggregator,
    readonly partition: number,
    private readonly makeKind: () => StatefulKind<unknown>,
    private readonly deps: RunnerDeps,
  ) {}

  /** `<type>.<partition>`: the lease unit. */
  get unit(): string {
    return `${this.agg.type}.${this.partition}`;
  }

  /** Starts working. */
  start(): void {
    this.running ??= this.run();
  }

  /** Stops after the group in hand (uncommitted work is left for the next owner to redo). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.messages?.stop();
    this.wake();
    await this.running;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      // Without a valid lease (renewals failing) nothing is touched, not even the consumer.
      if (!this.deps.leaseValid()) {
        await Promise.race([sleep(IDLE_TICK_MS), new Promise<void>((r) => (this.wake = r))]);
        continue;
      }
      this.progressed = false;
      try {
        await this.session();
      } catch (err) {
        if (this.stopping) break;
        // A session that got work done before it failed starts the backoff over.
        if (this.progressed) failures = 0;
        if (err instanceof SessionEnd) {
          this.deps.log.info({ unit: this.unit, reason: err.message }, "partition session ended; starting again");
          failures = 0;
          continue;
        }
        failures++;
        const e = classifyThrown(err);
        const level = failures === 1 ? "warn" : "debug";
        this.deps.log[level](
          { unit: this.unit, code: e.code, reason: e.message, failures },
          "partition session failed; reloading its state and resuming from the stored position",
        );
        await Promise.race([sleep(retryDelayMs(failures)), new Promise<void>((r) => (this.wake = r))]);
      }
    }
  }

  private async session(): Promise<void> {
    const { js, names, store } = this.deps;
    const durable = names.consumers.aggregatePartition(this.agg.type, this.partition);
    await this.resetConsumer(durable);
    const kind = this.makeKind();
    const state = new PartitionState(kind, await store.load(this.agg.type, this.partition));
    this.deps.metrics.stateKeys.set({ type: this.agg.type, partition: String(this.partition) }, state.keys.size);
    await publishOutbox(this.deps, this.agg.type, this.partition, state);

    const consumer = await js.consumers.get(names.streams.AGGREGATE, durable);
    const messages = await consumer.consume({ max_messages: GROUP_MESSAGES * 2, expires: 5_000 });
    this.messages = messages;
    const buffer: JsMsg[] = [];
    let ended = false;
    void (async () => {
      for await (const m of messages) {
        buffer.push(m);
        this.wake();
      }
    })()
      .catch(() => undefined)
      .finally(() => {
        ended = true;
        this.wake();
      });
    let expected = 1;
    try {
      while (!this.stopping) {
        if (buffer.length === 0) {
          if (ended) throw new SessionEnd("the partition's consumer stopped");
          await Promise.race([new Promise<void>((r) => (this.wake = r)), sleep(IDLE_TICK_MS)]);
          if (buffer.length === 0 && !this.stopping) await this.idle(kind, state);
          continue;
        }
        const group = buffer.splice(0, GROUP_MESSAGES);
        // Consecutive deliveries are numbered 1, 2, 3…; a gap is a delivery that never reached
        // us, which would come back later, out of order: start over from what is stored.
        for (const m of group) {
          if (m.info.deliverySequence !== expected)
            throw new SessionEnd(`delivery ${expected} went missing (got ${m.info.deliverySequence})`);
          expected++;
        }
        await this.applyGroup(kind, state, group);
      }
    } finally {
      messages.stop();
      this.messages = undefined;
    }
  }

  // A fresh durable: delivery starts over at the oldest message not yet acked, in stream order,
  // whatever the previous owner had pulled.
  private async resetConsumer(durable: string): Promise<void> {
    const { jsm, names } = this.deps;
    const stream = names.streams.AGGREGATE;
    await jsm.consumers.delete(stream, durable).catch(() => undefined);
    await jsm.consumers.add(stream, {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: names.task.aggregatePartition(this.agg.type, this.partition),
      ack_wait: 120_000 * NS_PER_MS,
      max_ack_pending: GROUP_MESSAGES * 4,
      max_deliver: -1,
    });
  }

  private async applyGroup(kind: StatefulKind<unknown>, state: PartitionState<unknown>, group: JsMsg[]): Promise<void> {
    const done: JsMsg[] = [];
    let lastArrival = 0;
    for (const m of group) {
      const c = state.checkpoint;
      if (m.seq < c.seq || (m.seq === c.seq && c.done)) {
        done.push(m);
        continue;
      }
      const arrival = Math.floor(m.info.timestampNanos / NS_PER_MS);
      lastArrival = arrival;
      let body: RecordBatches;
      try {
        body = decodeBody("RecordBatches", m.data, encodingOf(m.headers));
      } catch (err) {
        await this.deadLetter(m, classifyThrown(err));
        Object.assign(state.checkpoint, { seq: m.seq, rec: 0, done: true });
        done.push(m);
        continue;
      }
      const skip = m.seq === c.seq ? c.rec : 0;
      let index = 0;
      for (const [b, batch] of body.batches.entries()) {
        const { records, ...meta } = batch;
        // A batch begun in an earlier commit is this message's own; any other copy of an applied one is skipped.
        if (index >= skip) {
          if (state.recent.has(meta.id, arrival)) {
            index += records.length;
            for (let n = 0; n < records.length; n++) state.count("duplicate");
            Object.assign(state.checkpoint, { seq: m.seq, rec: index, done: false });
            continue;
          }
          state.recent.add(meta.id, arrival);
        }
        for (const [i, record] of records.entries()) {
          if (index++ < skip) continue;
          const rec = this.prepare(kind, m, b, i, meta, record, arrival, records.length);
          if (rec instanceof MachinaError) {
            await this.refuse(m, b, i, meta, record, rec);
          } else {
            while (kind.fireDue(arrival, state)) if (state.full) await this.commit(state);
            kind.apply(rec, state);
          }
          Object.assign(state.checkpoint, { seq: m.seq, rec: index, done: false });
          if (state.full) await this.commit(state);
        }
      }
      Object.assign(state.checkpoint, { seq: m.seq, rec: index, done: true });
      done.push(m);
    }
    if (lastArrival > 0) while (kind.fireDue(lastArrival, state)) if (state.full) await this.commit(state);
    if (state.dirty) await this.commit(state);
    for (const m of done) m.ack();
  }

  // The record as the kind takes it, or why it cannot be taken.
  private prepare(
    kind: StatefulKind<unknown>,
    m: JsMsg,
    b: number,
    i: number,
    meta: InRecord["batch"],
    record: InRecord["record"],
    arrival: number,
    batchSize: number,
  ): InRecord | MachinaError {
    if (meta.type !== this.agg.type)
      return new MachinaError(
        "BAD_REQUEST",
        `a batch of type "${meta.type}" on a partition of type ${this.agg.type}; send batches to ${this.deps.names.task.aggregate(this.agg.type)} or aggregate.save.<type>`,
        { retryable: false, details: { type: meta.type } },
      );
    const key = recordKey(record, this.agg.key, i);
    if (key instanceof MachinaError) return key;
    const problem = kind.check(record, meta, i);
    if (problem !== null) return problem;
    return {
      record,
      keyId: key.keyId,
      key: key.key,
      time: kind.eventTime(record, meta),
      arrival,
      batch: meta,
      seq: (meta.firstSeq || 0) + i,
      position: `${m.seq}.${b}.${i}`,
      origin: `${meta.id}/${i}`,
      batchSize,
    };
  }

  // A record that cannot be aggregated goes to the dead-letter stream alone, under an id of its
  // own (so a replay of it is not taken for a copy of its batch).
  private refuse(
    m: JsMsg,
    b: number,
    i: number,
    meta: InRecord["batch"],
    record: InRecord["record"],
    err: MachinaError,
  ) {
    const alone = { ...meta, id: `${meta.id}#r${i}`, records: [record], firstSeq: (meta.firstSeq || 0) + i };
    return this.deadLetter(m, err, {
      part: `b${b}r${i}`,
      payload: encodeBody("RecordBatches", { batches: [alone] }, "protobuf"),
    });
  }

  // Nothing arrived for a while: fire what the wall clock made due, and record publications.
  private async idle(kind: StatefulKind<unknown>, state: PartitionState<unknown>): Promise<void> {
    const now = this.deps.clock();
    while (kind.fireDue(now, state)) if (state.full) await this.commit(state);
    if (state.dirty) await this.commit(state);
  }

  private async commit(state: PartitionState<unknown>): Promise<void> {
    const { store, metrics } = this.deps;
    if (!this.deps.leaseValid()) throw new SessionEnd("the lease ran out before the commit");
    // forward_fill's output goes first: replaying from the stored position makes it again, the same.
    await publishPassed(this.deps, this.agg.type, this.partition, state.takePassed());
    const write = state.takeCommit();
    const started = performance.now();
    const revision = await store.commit(this.agg.type, this.partition, write);
    const outcomes = state.committed(write, revision);
    this.progressed = true;
    const labels = { type: this.agg.type };
    metrics.commitSeconds.observe(labels, (performance.now() - started) / 1000);
    metrics.stateWrites.inc(labels, write.keys.size);
    for (const [outcome, n] of outcomes) metrics.records.inc({ ...labels, outcome }, n);
    metrics.stateKeys.set({ ...labels, partition: String(this.partition) }, state.keys.size);
    await publishOutbox(this.deps, this.agg.type, this.partition, state);
  }

  private async deadLetter(m: JsMsg, err: MachinaError, part?: { part: string; payload: Uint8Array }): Promise<void> {
    this.deps.metrics.records.inc({ type: this.agg.type, outcome: "refused" });
    this.deps.log.warn(
      { unit: this.unit, seq: m.seq, part: part?.part, code: err.code, reason: err.message },
      "record refused; dead-lettered",
    );
    await storeDeadLetter(
      this.deps.js,
      this.deps.names,
      {
        stream: m.info.stream,
        subject: m.subject,
        seq: m.seq,
        deliveries: m.info.deliveryCount,
        data: m.data,
        contentType: m.headers?.get("Content-Type") || "application/json",
      },
      err,
      part,
    );
  }
}
