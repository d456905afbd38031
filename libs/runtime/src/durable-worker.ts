import type { MsgHdrs } from "@nats-io/nats-core";
import type { Consumer, JetStreamClient, JsMsg } from "@nats-io/jetstream";
import type { Logger } from "@machina/log";
import type { MessageName, MessageTypes } from "@machina/protos";
import type { MeshNames } from "@machina/subjects";
import { MachinaError, TIMING_HEADER, appendTiming, decodeBody, encodeBody, encodingOf } from "@machina/wire";
import { classifyThrown } from "./classify";
import { storeDeadLetter } from "./dead-letter";
import type { Health } from "./health";
import type { ServiceMetrics } from "./metrics";
import type { ResourceGate } from "./resource-gate";
import { RESOURCES_HEADER, parseResources } from "./resources";
import type { Resources } from "./resources";
import type { PipelineStream } from "./topology";

/** What a worker's handler knows about the message besides its body. */
export interface WorkerContext {
  log: Logger;
  subject: string;
  headers?: MsgHdrs;
  /** 1 on first delivery; quota delays and crashes count too, so use it for logs only. */
  deliveryCount: number;
  /** Machina-Timing value including this hop so far; pass it on to the next hop. */
  timing(): string;
  /**
   * Parks one part of the message on the dead-letter stream (e.g. one bad record of a batch) with
   * its error, as if it had come alone: replay publishes `value` to the original subject. `part`
   * names the part within the message (its Nats-Msg-Id suffix), so a redelivery parks it once.
   * Resolves once the dead letter is stored; ack the message only after.
   */
  deadLetter<P extends MessageName>(
    part: string,
    message: P,
    value: Partial<MessageTypes[P]>,
    err: MachinaError,
  ): Promise<void>;
}

/** A consumer of one durable pipeline stream, shared by every replica of a service. */
export interface WorkerDef<N extends MessageName = MessageName> {
  /** Name in logs and metrics. */
  name: string;
  stream: Exclude<PipelineStream, "DLQ">;
  /** Durable consumer name. */
  durable: string;
  /** Subject filter of the consumer. */
  filter: string;
  /** Message type of the body. */
  message: N;
  /** Messages handled at once by this replica. Default 8. */
  concurrency?: number;
  /**
   * Most messages one pull asks for. Default: the free lanes. A worker whose messages wait on
   * something scarce (a quota) pulls one at a time so the rest stay for other replicas.
   */
  maxBatch?: number;
  /** Unacked messages across all replicas (the consumer's max_ack_pending). Default 1000. */
  maxAckPending?: number;
  /**
   * Milliseconds to wait before pulling the next message (0: pull now). The fetch service
   * passes its limiter's estimate, so work a source cannot admit stays on the stream.
   * Default: always 0.
   */
  gate?(): number;
  /**
   * Does the work; resolve only once the output is durably stored (PubAck or DB write).
   * Throw a MachinaError: OVER_QUOTA waits `details.retryAfterMs`, other retryable errors
   * retry with capped backoff for as long as they last, the rest go to the dead-letter stream.
   */
  handle(value: MessageTypes[N], ctx: WorkerContext): Promise<void>;
}

/** Identity helper that lets TypeScript infer a worker's message type. */
export function defineWorker<N extends MessageName>(def: WorkerDef<N>): WorkerDef<N> {
  return def;
}

/** A running worker. */
export interface RunningWorker {
  /** Stops pulling, waits for messages in hand to finish. */
  stop(): Promise<void>;
}

/** Longest wait between two tries while a dependency is down. */
export const MAX_RETRY_DELAY_MS = 30_000;

/** Backoff before the n-th retry: 0.5 s doubling to 30 s, ±20 % jitter. */
export function retryDelayMs(attempt: number): number {
  const base = Math.min(MAX_RETRY_DELAY_MS, 500 * 2 ** Math.max(0, attempt - 1));
  return Math.min(MAX_RETRY_DELAY_MS, Math.round(base * (0.8 + Math.random() * 0.4)));
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));
// How long one pull request waits on an empty stream; short enough that a gate or stop is noticed soon.
const PULL_EXPIRES_MS = 2_000;
// A pull still open this long after its expiry lost its request or its end (a consumer leader that
// died, a reconnect mid-pull): it is ended here, so a worker never waits on it for good.
const PULL_STALL_MS = PULL_EXPIRES_MS * 3;
// Finished messages remembered per worker, to recognise one whose ack was lost.
const COMPLETED_MEMORY = 100_000;
// A gate's wait is re-checked at least this often, so a quota that reopens early is used.
const MAX_GATE_SLEEP_MS = 1_000;
// A task that does not fit now goes back to the stream for a moment (another replica, or this one
// once a running task ends); one that exceeds this replica's capacity waits longer, for a larger one.
const BUSY_DELAY_MS = 200;
const TOO_LARGE_DELAY_MS = 1_000;

/**
 * Works on up to `concurrency` messages of a durable consumer at once, pulling as many as there
 * are free lanes in one request; nothing waits in a local buffer, so what this replica cannot
 * work on stays on the stream for another replica. After a retryable failure the worker pauses (backoff doubling to 30 s) and
 * then probes with a single lane until a message succeeds, so an outage costs one try per
 * pause instead of a storm; the dependency shows on /readyz meanwhile.
 */
export async function startWorker(
  js: JetStreamClient,
  names: MeshNames,
  def: WorkerDef,
  hop: string,
  log: Logger,
  metrics: ServiceMetrics,
  health: Health,
  /** Admits tasks that carry Machina-Resources; without one such tasks are taken as any other. */
  gate?: ResourceGate,
): Promise<RunningWorker> {
  const consumer: Consumer = await js.consumers.get(names.streams[def.stream], def.durable);
  const lanes = Math.max(1, def.concurrency ?? 8);
  const maxBatch = Math.max(1, def.maxBatch ?? lanes);
  let stopping = false;
  let pausedUntil = 0;
  // Consecutive failed pauses; 0 when healthy. A failure of a message pulled before the current
  // pause began does not deepen it: one outage hits every lane at once.
  let failures = 0;
  let epoch = 0;
  // Dependencies this worker reported down (/readyz), all cleared together once it works again:
  // an outage may fail it on more than one (NATS, then the KV), and each must be cleared.
  const down = new Set<string>();
  const recoverAll = () => {
    for (const d of down) health.recover(d);
    down.clear();
  };
  let wake: () => void = () => undefined;
  const stopped = new Promise<void>((r) => (wake = r));

  const rest = (ms: number) => Promise.race([sleep(ms), stopped]);
  // Stream sequences this replica finished recently, oldest first (bounded).
  const completed = new Set<number>();
  // The series every message records, bound once.
  const ackCount = metrics.messages.labels({ consumer: def.name, outcome: "ack" });
  const handledSeconds = metrics.messageSeconds.labels({ consumer: def.name });
  const remember = (seq: number) => {
    completed.add(seq);
    if (completed.size > COMPLETED_MEMORY) completed.delete(completed.values().next().value as number);
  };

  // Messages being handled, and messages asked for by pulls still open but not yet delivered:
  // together never more than the lanes, so nothing waits in a local buffer.
  let inflight = 0;
  let reserved = 0;
  let pullErrors = 0;
  let nextPullAt = 0;
  let notify: () => void = () => undefined;
  const open = new Set<Awaited<ReturnType<Consumer["fetch"]>>>();
  const changed = () => new Promise<void>((r) => (notify = r));
  const poke = () => notify();
  // While probing after failures only one message is worked on.
  const capacity = () => (failures > 0 ? 1 : lanes);

  async function pullLoop(): Promise<void> {
    while (!stopping) {
      const now = Date.now();
      const hold = Math.max(pausedUntil, nextPullAt) - now;
      if (hold > 0) {
        await rest(Math.min(hold, MAX_GATE_SLEEP_MS));
        continue;
      }
      const wait = def.gate?.() ?? 0;
      if (wait > 0) {
        await rest(Math.min(wait, MAX_GATE_SLEEP_MS));
        continue;
      }
      const free = Math.min(capacity() - inflight - reserved, maxBatch);
      if (free <= 0) {
        await Promise.race([changed(), stopped]);
        continue;
      }
      // One pull asks for every free lane at once; another pull opens as soon as lanes free
      // up, so a short batch on a quiet stream never holds back a busy one.
      reserved += free;
      const settled = changed();
      void pullBatch(free);
      await Promise.race([settled, stopped]);
    }
  }

  async function pullBatch(n: number): Promise<void> {
    let delivered = 0;
    let batch: Awaited<ReturnType<Consumer["fetch"]>> | undefined;
    let stall: NodeJS.Timeout | undefined;
    try {
      batch = await consumer.fetch({ max_messages: n, expires: PULL_EXPIRES_MS });
      open.add(batch);
      const pulled = batch;
      stall = setTimeout(() => {
        log.info({ worker: def.name, delivered, asked: n }, "a pull got no end from the server in time; pulling again");
        pulled.stop();
      }, PULL_STALL_MS);
      for await (const m of batch) {
        delivered++;
        reserved--;
        // Arrived after stop or during a pause: back to the stream at once (for another replica,
        // or for when the pause ends) instead of being worked on against a dependency that is down.
        const hold = pausedUntil - Date.now();
        if (stopping || hold > 0) {
          m.nak(stopping ? 0 : hold);
          poke();
          continue;
        }
        inflight++;
        poke();
        handleOne(m)
          // handleOne settles every outcome itself; what escapes is e.g. an ack on a closed
          // connection, and the message then simply comes back.
          .catch((err: unknown) =>
            log.warn({ err, worker: def.name }, "could not settle a message; it will be redelivered"),
          )
          .finally(() => {
            inflight--;
            poke();
          });
      }
      pullErrors = 0;
      // An empty pull after the pause: none of this worker's work waits on the dependency any
      // more (another replica took it, or it is done), so /readyz stops naming it. The next
      // message is still worked on one lane until one succeeds.
      if (delivered === 0 && down.size > 0 && !stopping && inflight === 0 && Date.now() >= pausedUntil) recoverAll();
    } catch (err) {
      if (!stopping) {
        pullErrors++;
        if (pullErrors === 1) log.warn({ err, worker: def.name }, "cannot pull from the stream; retrying");
        nextPullAt = Date.now() + Math.min(5_000, 250 * 2 ** pullErrors);
      }
    } finally {
      clearTimeout(stall);
      if (batch !== undefined) open.delete(batch);
      reserved -= n - delivered;
      poke();
    }
  }

  async function handleOne(m: JsMsg): Promise<void> {
    // An ack lost in a disconnect brings the message back though its output is stored; doing
    // the work again would e.g. fetch again and store a second raw answer.
    if (m.info.deliveryCount > 1 && completed.has(m.seq)) {
      m.ack();
      metrics.messages.inc({ consumer: def.name, outcome: "redelivered-done" });
      return;
    }
    const need = await admit(m);
    if (need === null) return;
    const started = performance.now();
    const myEpoch = epoch;
    const deliveryCount = m.info.deliveryCount;
    // A pino child per message costs more than most handlers (its redaction setup shows in
    // every profile); it is made only when something is logged.
    let childLog: Logger | undefined;
    const child = (): Logger =>
      (childLog ??= log.child({
        worker: def.name,
        subject: m.subject,
        seq: m.seq,
        msgId: m.headers?.get("Nats-Msg-Id") || undefined,
        delivery: deliveryCount,
      }));
    // Long fetches must not let the ack wait expire and cause a duplicate delivery.
    const keepAlive = setInterval(() => m.working(), 10_000);
    let outcome = "ack";
    try {
      const value = decodeBody(def.message, m.data, encodingOf(m.headers));
      await def.handle(value, {
        get log() {
          return child();
        },
        subject: m.subject,
        headers: m.headers,
        deliveryCount,
        timing: () => appendTiming(m.headers?.get(TIMING_HEADER), hop, performance.now() - started),
        deadLetter: (part, message, partValue, err) =>
          deadLetter(m, err, { part, payload: encodeBody(message, partValue, "protobuf") }).then(() => {
            metrics.messages.inc({ consumer: def.name, outcome: "part-dead" });
            child().warn({ code: err.code, reason: err.message, part }, "part of a message dead-lettered");
          }),
      });
      m.ack();
      remember(m.seq);
      if (failures > 0) child().info({ afterPauses: failures }, "worker resumed");
      failures = 0;
      recoverAll();
    } catch (thrown) {
      outcome = await settleFailure(m, classifyThrown(thrown), myEpoch, child);
    } finally {
      clearInterval(keepAlive);
      if (need !== undefined) gate?.release(need);
      if (outcome === "ack") ackCount.inc();
      else metrics.messages.inc({ consumer: def.name, outcome });
      handledSeconds.observe((performance.now() - started) / 1000);
    }
  }

  /**
   * What the message's Machina-Resources asks (undefined without the header), reserved on the
   * gate; null when it was settled here instead: a header that does not parse is dead-lettered,
   * a task that does not fit goes back to the stream without counting as a failure.
   */
  async function admit(m: JsMsg): Promise<Partial<Resources> | undefined | null> {
    const header = m.headers?.get(RESOURCES_HEADER);
    if (!header || gate === undefined) return undefined;
    const child = () => log.child({ worker: def.name, subject: m.subject, seq: m.seq });
    let need: Partial<Resources>;
    try {
      need = parseResources(header);
    } catch (err) {
      metrics.messages.inc({ consumer: def.name, outcome: await settleFailure(m, classifyThrown(err), epoch, child) });
      return null;
    }
    const decision = gate.take(need);
    if (decision === "taken") return need;
    m.nak(decision === "never" ? TOO_LARGE_DELAY_MS : BUSY_DELAY_MS);
    metrics.messages.inc({ consumer: def.name, outcome: decision === "never" ? "too-large" : "busy" });
    // Said once, then every 100th time round, so a task no replica can take is visible, not noisy.
    if (decision === "never" && m.info.deliveryCount % 100 === 1)
      child().warn(
        { needs: header, capacity: gate.capacity, deliveries: m.info.deliveryCount },
        "task needs more than this replica has; left on the stream for a larger one",
      );
    return null;
  }

  async function settleFailure(m: JsMsg, err: MachinaError, myEpoch: number, child: () => Logger): Promise<string> {
    if (err.code === "OVER_QUOTA") {
      // Not an attempt: the task waits on the stream until the quota admits it.
      const delay = Math.min(MAX_RETRY_DELAY_MS, Math.max(100, Number(err.details.retryAfterMs ?? 1000)));
      pausedUntil = Math.max(pausedUntil, Date.now() + delay);
      child().debug({ delayMs: delay }, "over quota; waiting");
      m.nak(delay);
      return "delay";
    }
    if (err.retryable) {
      if (myEpoch === epoch) {
        failures++;
        epoch++;
        pausedUntil = Date.now() + retryDelayMs(failures);
        if (err.code === "UNAVAILABLE") {
          const dependency = String(err.details.dependency ?? "dependency");
          down.add(dependency);
          health.fail(dependency, err.message);
        }
        const level = failures === 1 ? "warn" : "debug";
        child()[level](
          { code: err.code, reason: err.message, pauseMs: pausedUntil - Date.now(), pauses: failures },
          "retryable failure; pausing this worker and retrying",
        );
      }
      m.nak(Math.max(100, pausedUntil - Date.now()));
      return "nak";
    }
    try {
      await deadLetter(m, err);
      m.term(err.code);
      child().error({ code: err.code, reason: err.message }, "message dead-lettered");
      return "dead";
    } catch (dlqErr) {
      // Without a stored dead letter the message must stay in the stream.
      child().error({ err: dlqErr }, "could not dead-letter; will retry");
      m.nak(retryDelayMs(2));
      return "nak";
    }
  }

  // The whole message, or one part of it re-encoded in protobuf (`part` then names it).
  function deadLetter(m: JsMsg, err: MachinaError, part?: { part: string; payload: Uint8Array }): Promise<void> {
    const source = {
      stream: m.info.stream,
      subject: m.subject,
      seq: m.seq,
      deliveries: m.info.deliveryCount,
      data: m.data,
      contentType: m.headers?.get("Content-Type") || "application/json",
    };
    // Without a stored dead letter the message must stay: a retryable failure naks it.
    return storeDeadLetter(js, names, source, err, part);
  }

  const running = pullLoop();
  return {
    async stop() {
      stopping = true;
      wake();
      await running;
      for (const b of open) b.stop();
      while (inflight > 0 || open.size > 0) await Promise.race([changed(), sleep(100)]);
      recoverAll();
    },
  };
}
