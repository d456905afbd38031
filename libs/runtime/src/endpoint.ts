import type { MsgHdrs } from "@nats-io/nats-core";
import type { Service, ServiceMsg } from "@nats-io/services";
import type { Logger } from "@machina/log";
import type { MessageName, MessageTypes } from "@machina/protos";
import {
  FixedHeaders,
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
import type { CounterSeries, HistogramSeries } from "./fast-metrics";
import { asyncOutcomeCounter } from "./micro-stats";

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
  const served: Served = {
    def,
    hop,
    log,
    metrics,
    countOutcome: asyncOutcomeCounter(svc, def.name),
    okCount: metrics.requests.labels({ endpoint: def.name, outcome: "ok" }),
    handlerSeconds: metrics.requestSeconds.labels({ endpoint: def.name }),
  };
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
      void serve(served, msg);
    },
  });
}

/** What serve() needs of an endpoint, gathered once at registration. */
interface Served {
  def: EndpointDef;
  hop: string;
  log: Logger;
  metrics: ServiceMetrics;
  countOutcome(awaitedMs: number, err?: Error): void;
  /** Series of the common case, bound once. */
  okCount: CounterSeries;
  handlerSeconds: HistogramSeries;
}

/**
 * The context a handler gets. A class, not an object literal with closures: one of these is made
 * per request, and per-request closures (which tsx also names one by one) showed in profiles.
 */
class CallContext implements EndpointContext {
  private childLog: Logger | undefined;

  constructor(
    private readonly ep: Served,
    private readonly msg: ServiceMsg,
    readonly headers: MsgHdrs | undefined,
    readonly encoding: Encoding,
  ) {}

  get subject(): string {
    return this.msg.subject;
  }

  /** Most requests log nothing: the child (its request id, its redaction setup) is made on first use only. */
  get log(): Logger {
    return (this.childLog ??= this.ep.log.child({
      subject: this.msg.subject,
      endpoint: this.ep.def.name,
      requestId: this.headers?.get("Nats-Msg-Id") || `${process.pid}-${++seq}`,
    }));
  }
}

async function serve(ep: Served, msg: ServiceMsg): Promise<void> {
  const { def, hop } = ep;
  const started = performance.now();
  const reqHeaders = msg.headers;
  let ctx: CallContext | undefined;
  let encoding: Encoding = "json";
  let outcome = "ok";
  let failure: Error | undefined;
  try {
    encoding = encodingOf(reqHeaders);
    // Strict: malformed bytes, unknown fields and wrong types are BAD_REQUEST naming the field.
    const req = decodeBody(def.request, msg.data, encoding);
    ctx = new CallContext(ep, msg, reqHeaders, encoding);
    const value = await def.handler(req, ctx);
    const body = encodeBody(def.reply, value, encoding);
    const timing = appendTiming(reqHeaders?.get(TIMING_HEADER), hop, performance.now() - started);
    msg.respond(body, {
      headers: new FixedHeaders([
        ["Content-Type", contentTypeOf(encoding)],
        [TIMING_HEADER, timing],
      ]),
    });
  } catch (thrown) {
    const err = toMachinaError(thrown);
    outcome = err.code;
    const log = (ctx ??= new CallContext(ep, msg, reqHeaders, encoding)).log;
    if (err.code === "INTERNAL") log.error({ err: thrown }, "handler failed");
    else log.info({ code: err.code, reason: err.message }, "request refused");
    try {
      const { headers, body } = errorReply(err, encoding);
      headers.set(TIMING_HEADER, appendTiming(reqHeaders?.get(TIMING_HEADER), hop, performance.now() - started));
      msg.respond(body, { headers });
    } catch (replyErr) {
      log.error({ err: replyErr }, "could not send error reply");
    }
    failure = err;
  } finally {
    const seconds = (performance.now() - started) / 1000;
    ep.countOutcome(seconds * 1000, failure);
    if (outcome === "ok") ep.okCount.inc();
    else ep.metrics.requests.inc({ endpoint: def.name, outcome });
    ep.handlerSeconds.observe(seconds);
  }
}
