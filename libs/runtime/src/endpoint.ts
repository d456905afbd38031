import { headers as makeHeaders } from "@nats-io/nats-core";
import type { MsgHdrs } from "@nats-io/nats-core";
import type { Service, ServiceMsg } from "@nats-io/services";
import type { Logger } from "@machina/log";
import type { MessageName, MessageTypes } from "@machina/protos";
import {
  TIMING_HEADER,
  appendTiming,
  contentTypeOf,
  decodeBody,
  encodeBody,
  encodingOf,
  errorReply,
  toMachinaError,
} from "@machina/wire";
import type { Encoding } from "@machina/wire";
import type { ServiceMetrics } from "./metrics";
import { countAsyncOutcome } from "./micro-stats";

/** What a handler knows about the call besides its decoded body. */
export interface EndpointContext {
  /** Child logger carrying subject and request id. */
  log: Logger;
  /** The concrete subject the request arrived on (wildcard endpoints parse it). */
  subject: string;
  /** Request headers, if any. */
  headers?: MsgHdrs;
  /** Encoding of the request, used for the reply. */
  encoding: Encoding;
}

/** A request/reply endpoint: decode → handler → encode, errors as typed error replies. */
export interface EndpointDef<Q extends MessageName = MessageName, R extends MessageName = MessageName> {
  /** Micro-service endpoint name, unique within the service. */
  name: string;
  /** Full subject; may end in wildcards. */
  subject: string;
  /** Request message type. */
  request: Q;
  /** Reply message type. */
  reply: R;
  /** One-line description, shown by `nats micro info`. */
  description?: string;
  /** The work; throw a MachinaError to answer with an error. */
  handler(req: MessageTypes[Q], ctx: EndpointContext): Promise<Partial<MessageTypes[R]>>;
}

/** Identity helper that lets TypeScript infer an endpoint's message types. */
export function defineEndpoint<Q extends MessageName, R extends MessageName>(
  def: EndpointDef<Q, R>,
): EndpointDef<Q, R> {
  return def;
}

let seq = 0;

/** Registers `def` on a micro service; every outcome, including a rejected promise, ends in a reply. */
export function addEndpoint(svc: Service, def: EndpointDef, hop: string, log: Logger, metrics: ServiceMetrics): void {
  svc.addEndpoint(def.name, {
    subject: def.subject,
    metadata: def.description
      ? { description: def.description, request: def.request, reply: def.reply }
      : { request: def.request, reply: def.reply },
    handler: (err, msg) => {
      if (err) {
        log.error({ err, endpoint: def.name }, "endpoint subscription failed");
        return;
      }
      // The services library calls handlers synchronously: the promise must never escape.
      void serve(svc, def, msg, hop, log, metrics);
    },
  });
}

async function serve(
  svc: Service,
  def: EndpointDef,
  msg: ServiceMsg,
  hop: string,
  log: Logger,
  metrics: ServiceMetrics,
): Promise<void> {
  const started = performance.now();
  const requestId = msg.headers?.get("Nats-Msg-Id") || `${process.pid}-${++seq}`;
  // Most requests log nothing: the child (and its redaction setup) is made on first use only.
  let childLog: Logger | undefined;
  const child = () => (childLog ??= log.child({ subject: msg.subject, endpoint: def.name, requestId }));
  let encoding: Encoding = "json";
  let outcome = "ok";
  let failure: Error | undefined;
  try {
    encoding = encodingOf(msg.headers);
    const req = decodeBody(def.request, msg.data, encoding);
    const value = await def.handler(req, {
      get log() {
        return child();
      },
      subject: msg.subject,
      headers: msg.headers,
      encoding,
    });
    const h = makeHeaders();
    h.set("Content-Type", contentTypeOf(encoding));
    h.set(TIMING_HEADER, appendTiming(msg.headers?.get(TIMING_HEADER), hop, performance.now() - started));
    msg.respond(encodeBody(def.reply, value, encoding), { headers: h });
  } catch (thrown) {
    const err = toMachinaError(thrown);
    outcome = err.code;
    if (err.code === "INTERNAL") child().error({ err: thrown }, "handler failed");
    else child().info({ code: err.code, reason: err.message }, "request refused");
    try {
      const { headers, body } = errorReply(err, encoding);
      headers.set(TIMING_HEADER, appendTiming(msg.headers?.get(TIMING_HEADER), hop, performance.now() - started));
      msg.respond(body, { headers });
    } catch (replyErr) {
      child().error({ err: replyErr }, "could not send error reply");
    }
    failure = err;
  } finally {
    const seconds = (performance.now() - started) / 1000;
    countAsyncOutcome(svc, def.name, seconds * 1000, failure);
    metrics.requests.inc({ endpoint: def.name, outcome });
    metrics.requestSeconds.observe({ endpoint: def.name }, seconds);
  }
}
