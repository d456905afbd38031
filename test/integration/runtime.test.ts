// libs/runtime against a real nats-server: endpoints (typed errors, malformed input, rejected
// handlers), micro stats, probes, durable workers (retry, quota delay, dead letter) and drain.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { headers as makeHeaders } from "@nats-io/nats-core";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Svcm } from "@nats-io/services";
import { codec } from "@machina/protos";
import { MeshClient, defineEndpoint, defineWorker, publishDurable, startService } from "@machina/runtime";
import type { RunningService, ServiceSpec } from "@machina/runtime";
import { MachinaError, TIMING_HEADER, parseTiming, readErrorReply } from "@machina/wire";
import { NATS_URL, emptyConfigDir, uniquePrefix } from "../support/nats-env";

const prefix = uniquePrefix("rt");
const seen = new Map<string, number>();
const done: string[] = [];

const spec: ServiceSpec<Record<string, never>> = {
  name: "aggregate",
  version: "9.9.9",
  description: "runtime test service",
  httpPort: 0,
  async setup(ctx) {
    return {
      endpoints: [
        defineEndpoint({
          name: "echo",
          subject: `${ctx.names.prefix}.test.echo`,
          request: "FireRequest",
          reply: "FireReply",
          async handler(req) {
            return { trigger: req.trigger, tick: 7 };
          },
        }),
        defineEndpoint({
          name: "boom",
          subject: `${ctx.names.prefix}.test.boom`,
          request: "Empty",
          reply: "Ack",
          async handler() {
            await new Promise((r) => setTimeout(r, 60));
            throw new Error("kaboom\nsecond line");
          },
        }),
        defineEndpoint({
          name: "refuse",
          subject: `${ctx.names.prefix}.test.refuse`,
          request: "Empty",
          reply: "Ack",
          async handler() {
            throw new MachinaError("CONFLICT", "head moved; fetch the new head and retry", {
              details: { head: "abc" },
            });
          },
        }),
      ],
      workers: [
        defineWorker({
          name: "test-worker",
          stream: "AGGREGATE",
          durable: "test-worker",
          filter: ctx.names.streamSubjects.AGGREGATE,
          message: "RecordBatch",
          async handle(batch) {
            const n = (seen.get(batch.id) ?? 0) + 1;
            seen.set(batch.id, n);
            if (batch.source === "flaky" && n < 3) throw new MachinaError("UPSTREAM", "flaky upstream");
            if (batch.source === "quota" && n < 2)
              throw new MachinaError("OVER_QUOTA", "wait", { details: { retryAfterMs: 300 } });
            if (batch.source === "broken") throw new MachinaError("BAD_REQUEST", 'record has no key field "domain"');
            // Down on one dependency, then on another: once it works, /readyz must name neither.
            if (batch.source === "twodeps" && n < 3)
              throw new MachinaError("UNAVAILABLE", `dependency ${n} down`, {
                details: { dependency: n === 1 ? "cassandra" : "nats-kv" },
              });
            if (batch.source === "outage" && n < 4)
              throw new MachinaError("UNAVAILABLE", "cassandra down", { details: { dependency: "cassandra" } });
            done.push(batch.id);
          },
        }),
      ],
    };
  },
};

let svc: RunningService<Record<string, never>>;
let nc: NatsConnection;

async function waitFor(cond: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("runtime", () => {
  before(async () => {
    svc = await startService(spec, {
      handleSignals: false,
      configDir: emptyConfigDir(),
      env: {
        MACHINA_NATS_URL: NATS_URL,
        MACHINA_MESH_PREFIX: prefix,
        MACHINA_HTTP_PORT: "0",
        MACHINA_LOG_LEVEL: "silent",
        LOG_LEVEL: "silent",
      },
    });
    nc = await connect({ servers: NATS_URL });
  });

  after(async () => {
    await svc?.stop();
    const jsm = await jetstreamManager(nc);
    for (const s of Object.values(svc.ctx.names.streams)) await jsm.streams.delete(s).catch(() => undefined);
    await nc?.close();
  });

  it("answers JSON with JSON and appends its hop to Machina-Timing", async () => {
    const h = makeHeaders();
    h.set(TIMING_HEADER, "caller;dur=1.00");
    const m = await nc.request(`${prefix}.test.echo`, JSON.stringify({ trigger: "t1" }), { timeout: 5000, headers: h });
    assert.equal(m.headers?.get("Content-Type"), "application/json");
    assert.deepEqual(JSON.parse(m.string()), {
      trigger: "t1",
      tick: 7,
      tasks: 0,
      duplicates: 0,
      superseded: 0,
      tickId: "",
      state: "",
    });
    const hops = parseTiming(m.headers?.get(TIMING_HEADER));
    assert.deepEqual(
      hops.map((x) => x.hop),
      ["caller", "aggregate"],
    );
  });

  it("answers protobuf with protobuf", async () => {
    const h = makeHeaders();
    h.set("Content-Type", "application/x-protobuf");
    const m = await nc.request(`${prefix}.test.echo`, codec("FireRequest").encode({ trigger: "bin" }), {
      timeout: 5000,
      headers: h,
    });
    assert.equal(m.headers?.get("Content-Type"), "application/x-protobuf");
    assert.equal(codec("FireReply").decode(m.data).trigger, "bin");
  });

  it("refuses malformed JSON with 400 and keeps serving", async () => {
    const bad = await nc.request(`${prefix}.test.echo`, "{not json", { timeout: 5000 });
    assert.equal(bad.headers?.get("Nats-Service-Error-Code"), "400");
    const err = readErrorReply(bad);
    assert.equal(err?.code, "BAD_REQUEST");
    assert.match(err!.message, /malformed JSON/);
    const unknown = await nc.request(`${prefix}.test.echo`, JSON.stringify({ trigerr: "x" }), { timeout: 5000 });
    assert.match(readErrorReply(unknown)!.message, /trigerr: unknown field/);
    const ok = await nc.request(`${prefix}.test.echo`, JSON.stringify({ trigger: "after" }), { timeout: 5000 });
    assert.equal(JSON.parse(ok.string()).trigger, "after");
  });

  it("turns a rejected async handler into a 500 reply, never a time-out, with a one-line header", async () => {
    const m = await nc.request(`${prefix}.test.boom`, "", { timeout: 5000 });
    assert.equal(m.headers?.get("Nats-Service-Error-Code"), "500");
    assert.doesNotMatch(m.headers!.get("Nats-Service-Error"), /[\r\n]/);
    assert.equal(readErrorReply(m)?.code, "INTERNAL");
  });

  it("carries a typed MachinaError with its status, code, details and retryable flag", async () => {
    const m = await nc.request(`${prefix}.test.refuse`, "", { timeout: 5000 });
    assert.equal(m.headers?.get("Nats-Service-Error-Code"), "409");
    const err = readErrorReply(m)!;
    assert.equal(err.code, "CONFLICT");
    assert.equal(err.details.head, "abc");
    assert.equal(err.retryable, false);
  });

  it("counts async failures in micro stats", async () => {
    const stats = [];
    for await (const s of await new Svcm(nc).client().stats("aggregate")) stats.push(s);
    const mine = stats.find((s) => s.id === svc.service.info().id)!;
    const boom = mine.endpoints!.find((e) => e.name === "boom")!;
    assert.ok(boom.num_errors >= 1, `boom errors ${boom.num_errors}`);
    // The handler awaits 60 ms before failing: that time must show, not just the synchronous part.
    assert.ok(boom.processing_time >= 55_000_000, `boom processing time ${boom.processing_time} ns`);
    const echo = mine.endpoints!.find((e) => e.name === "echo")!;
    assert.ok(echo.num_errors >= 2, "malformed requests count as errors");
  });

  it("MeshClient matches many concurrent replies to their requests and types every failure", async () => {
    const client = new MeshClient(nc);
    const triggers = Array.from({ length: 300 }, (_, i) => `t${i}`);
    const replies = await Promise.all(
      triggers.map((t) => client.request(`${prefix}.test.echo`, "FireRequest", { trigger: t }, "FireReply")),
    );
    assert.deepEqual(
      replies.map((r) => r.trigger),
      triggers,
    );
    await assert.rejects(
      client.request(`${prefix}.test.refuse`, "Empty", {}, "Ack"),
      (e: unknown) => e instanceof MachinaError && e.code === "CONFLICT" && e.details.head === "abc",
    );
    await assert.rejects(
      client.request(`${prefix}.nobody.home`, "Empty", {}, "Ack"),
      (e: unknown) => e instanceof MachinaError && e.code === "UNAVAILABLE",
    );
    // A subscriber that never answers: the request must end as TIMEOUT, not hang.
    const silent = nc.subscribe(`${prefix}.test.silent`);
    await assert.rejects(
      client.request(`${prefix}.test.silent`, "Empty", {}, "Ack", { timeoutMs: 200 }),
      (e: unknown) => e instanceof MachinaError && e.code === "TIMEOUT",
    );
    silent.unsubscribe();
  });

  it("serves /healthz, /readyz and /metrics", async () => {
    const base = `http://127.0.0.1:${svc.probePort}`;
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /machina_requests_total\{[^}]*endpoint="boom"[^}]*outcome="INTERNAL"/);
  });

  it("retries retryable failures for as long as they last, delays over-quota work, and dead-letters only permanent errors", async () => {
    const js = jetstream(nc);
    const subject = svc.ctx.names.task.aggregate("website");
    const base = `http://127.0.0.1:${svc.probePort}`;
    const send = (source: string) =>
      publishDurable(
        js,
        subject,
        "RecordBatch",
        { id: `b-${source}`, type: "website", source },
        { msgID: `b-${source}` },
      );
    await send("outage");
    // While the "dependency" is down the worker pauses and /readyz names it.
    await waitFor(async () => {
      const r = await fetch(`${base}/readyz`);
      const body = (await r.json()) as { waitingFor?: Record<string, unknown> };
      return r.status === 503 && body.waitingFor?.cassandra !== undefined;
    });
    for (const source of ["flaky", "quota", "broken", "fine"]) await send(source);
    await waitFor(() => ["b-flaky", "b-quota", "b-fine", "b-outage"].every((id) => done.includes(id)), 60_000);
    assert.equal(seen.get("b-flaky"), 3, "flaky succeeds on its third delivery");
    assert.equal(seen.get("b-quota"), 2, "quota delay then success");
    assert.equal(seen.get("b-outage"), 4, "an outage is retried past any attempt budget, then stored");
    assert.equal((await fetch(`${base}/readyz`)).status, 200, "ready again once the dependency answers");
    const jsm = await jetstreamManager(nc);
    await waitFor(async () => (await jsm.streams.info(svc.ctx.names.streams.DLQ)).state.messages >= 1);
    assert.equal(seen.get("b-broken"), 1, "non-retryable errors are not retried");
    assert.equal(
      (await jsm.streams.info(svc.ctx.names.streams.DLQ)).state.messages,
      1,
      "only the permanent error is dead-lettered",
    );
    const letters = [];
    for (let seq = 1; seq <= 1; seq++) {
      const sm = await jsm.streams.getMessage(svc.ctx.names.streams.DLQ, { seq });
      letters.push(codec("DeadLetter").decode(sm!.data));
    }
    const broken = letters.find((l) => codec("RecordBatch").decode(l.payload).id === "b-broken")!;
    assert.equal(broken.errorCode, "BAD_REQUEST");
    assert.match(broken.errorMessage, /domain/);
    assert.equal(broken.stream, svc.ctx.names.streams.AGGREGATE);
    // Work-queue retention: nothing is left behind once every message was acked or termed.
    await waitFor(async () => (await jsm.streams.info(svc.ctx.names.streams.AGGREGATE)).state.messages === 0);
  });

  it("clears every dependency it reported down once a message succeeds again", async () => {
    const base = `http://127.0.0.1:${svc.probePort}`;
    await publishDurable(
      jetstream(nc),
      svc.ctx.names.task.aggregate("website"),
      "RecordBatch",
      { id: "b-twodeps", type: "website", source: "twodeps" },
      { msgID: "b-twodeps" },
    );
    await waitFor(() => done.includes("b-twodeps"), 30_000);
    assert.equal(seen.get("b-twodeps"), 3);
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200, `ready once it works again: ${await ready.text()}`);
  });
});
