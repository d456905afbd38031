import { headers as makeHeaders } from "@nats-io/nats-core";
import type { MsgHdrs } from "@nats-io/nats-core";
import type { ConsumerMessages, JetStreamClient, JsMsg } from "@nats-io/jetstream";
import type { Logger } from "@machina/log";
import type { MessageName, MessageTypes } from "@machina/protos";
import type { MeshNames } from "@machina/subjects";
import { CONTENT_TYPE_PROTOBUF, DEAD_LETTER_ERROR_HEADER, TIMING_HEADER, appendTiming, decodeBody, encodeBody, encodingOf, toMachinaError } from "@machina/wire";
import type { MachinaError } from "@machina/wire";
import type { ServiceMetrics } from "./metrics";
import type { PipelineStream } from "./topology";

/** What a worker's handler knows about the message besides its body. */
export interface WorkerContext {
  log: Logger;
  subject: string;
  headers?: MsgHdrs;
  /** 1 on first delivery. */
  deliveryCount: number;
  /** Machina-Timing value including this hop so far; pass it on to the next hop. */
  timing(): string;
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
  /** Retryable failures before the message goes to the dead-letter stream. Default 5. */
  maxAttempts?: number;
  /**
   * Does the work; resolve only once the output is durably stored (PubAck or DB write).
   * Throw a MachinaError: OVER_QUOTA delays, retryable retries with backoff, others dead-letter.
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

/** Backoff before redelivery after the n-th failed attempt: 0.5 s doubling to 30 s, ±20 % jitter. */
export function retryDelayMs(attempt: number): number {
  const base = Math.min(30_000, 500 * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

/** Starts pulling from a durable consumer and handling messages with bounded concurrency. */
export async function startWorker(
  js: JetStreamClient,
  names: MeshNames,
  def: WorkerDef,
  hop: string,
  log: Logger,
  metrics: ServiceMetrics,
): Promise<RunningWorker> {
  const consumer = await js.consumers.get(names.streams[def.stream], def.durable);
  const limit = def.concurrency ?? 8;
  const maxAttempts = def.maxAttempts ?? 5;
  let messages: ConsumerMessages | undefined;
  let stopping = false;
  const inFlight = new Set<Promise<void>>();
  let wake: (() => void) | undefined;

  const loop = (async () => {
    while (!stopping) {
      try {
        messages = await consumer.consume({ max_messages: limit * 2 });
        for await (const m of messages) {
          while (inFlight.size >= limit) await new Promise<void>((r) => (wake = r));
          const p = handleOne(m).finally(() => {
            inFlight.delete(p);
            wake?.();
          });
          inFlight.add(p);
          if (stopping) break;
        }
      } catch (err) {
        if (stopping) break;
        log.warn({ err, worker: def.name }, "consumer interrupted; resubscribing");
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  })();

  async function handleOne(m: JsMsg): Promise<void> {
    const started = performance.now();
    const deliveryCount = m.info.deliveryCount;
    const child = log.child({ worker: def.name, subject: m.subject, seq: m.seq, msgId: m.headers?.get("Nats-Msg-Id") || undefined, delivery: deliveryCount });
    // Long fetches must not let the ack wait expire and cause a duplicate delivery.
    const keepAlive = setInterval(() => m.working(), 10_000);
    let outcome = "ack";
    try {
      const value = decodeBody(def.message, m.data, encodingOf(m.headers));
      await def.handle(value, {
        log: child,
        subject: m.subject,
        headers: m.headers,
        deliveryCount,
        timing: () => appendTiming(m.headers?.get(TIMING_HEADER), hop, performance.now() - started),
      });
      m.ack();
    } catch (thrown) {
      const err = toMachinaError(thrown);
      outcome = await settleFailure(m, err, deliveryCount, child);
    } finally {
      clearInterval(keepAlive);
      metrics.messages.inc({ consumer: def.name, outcome });
      metrics.messageSeconds.observe({ consumer: def.name }, (performance.now() - started) / 1000);
    }
  }

  async function settleFailure(m: JsMsg, err: MachinaError, deliveryCount: number, child: Logger): Promise<string> {
    if (err.code === "OVER_QUOTA") {
      const delay = Math.max(100, Number(err.details.retryAfterMs ?? 1000));
      child.debug({ delayMs: delay }, "over quota; delaying");
      m.nak(delay);
      return "delay";
    }
    if (err.retryable && deliveryCount < maxAttempts) {
      const delay = retryDelayMs(deliveryCount);
      child.warn({ code: err.code, reason: err.message, delayMs: delay }, "retryable failure; will retry");
      m.nak(delay);
      return "nak";
    }
    try {
      await deadLetter(m, err, deliveryCount);
      m.term(err.code);
      child.error({ code: err.code, reason: err.message }, "message dead-lettered");
      return "dead";
    } catch (dlqErr) {
      // Without a stored dead letter the message must stay in the stream.
      child.error({ err: dlqErr }, "could not dead-letter; will retry");
      m.nak(retryDelayMs(deliveryCount));
      return "nak";
    }
  }

  async function deadLetter(m: JsMsg, err: MachinaError, deliveryCount: number): Promise<void> {
    const h = makeHeaders();
    h.set("Content-Type", CONTENT_TYPE_PROTOBUF);
    h.set(DEAD_LETTER_ERROR_HEADER, err.code);
    const body = encodeBody(
      "DeadLetter",
      {
        stream: m.info.stream,
        subject: m.subject,
        streamSeq: m.seq,
        deliveries: deliveryCount,
        errorCode: err.code,
        errorMessage: err.message,
        payload: m.data,
        contentType: m.headers?.get("Content-Type") || "application/json",
      },
      "protobuf",
    );
    await js.publish(names.dlq(m.info.stream), body, { headers: h, msgID: `dlq-${m.info.stream}-${m.seq}` });
  }

  return {
    async stop() {
      stopping = true;
      await messages?.close();
      await loop.catch(() => undefined);
      await Promise.allSettled([...inFlight]);
    },
  };
}
