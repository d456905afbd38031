// MeshClient against a real nats-server, with hand-made responders: replies matched to callers
// through the one inbox subscription, time-outs from the one timer, error replies, no responders,
// and what closing the client or the connection does to requests still waiting.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { headers as makeHeaders } from "@nats-io/nats-core";
import type { Msg, NatsConnection } from "@nats-io/nats-core";
import { codec } from "@machina/protos";
import { MeshClient } from "@machina/runtime";
import { CONTENT_TYPE_PROTOBUF, MachinaError, errorReply } from "@machina/wire";
import { NATS_URL, uniquePrefix } from "../support/nats-env";

const prefix = uniquePrefix("mc");
let responder: NatsConnection;
let nc: NatsConnection;

const fire = codec("FireRequest");
const reply = codec("FireReply");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const isCode = (code: string) => (e: unknown) => e instanceof MachinaError && e.code === code;

/** Answers FireRequest{trigger} with FireReply{trigger, tick}, after `delayMs(trigger)`. */
function echo(subject: string, delayMs: (trigger: string) => number = () => 0): void {
  responder.subscribe(subject, {
    callback: (_err, m: Msg) => {
      const req = fire.decode(m.data);
      if (m.headers?.get("Content-Type") !== CONTENT_TYPE_PROTOBUF) throw new Error("not protobuf");
      const h = makeHeaders();
      h.set("Content-Type", CONTENT_TYPE_PROTOBUF);
      setTimeout(
        () => m.respond(reply.encode({ trigger: req.trigger, tick: 1 }), { headers: h }),
        delayMs(req.trigger),
      );
    },
  });
}

describe("MeshClient", () => {
  before(async () => {
    responder = await connect({ servers: NATS_URL, noAsyncTraces: true });
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    echo(`${prefix}.echo`);
    // Later requests are answered first: replies arrive in the reverse order of the requests.
    echo(`${prefix}.reverse`, (t) => 200 - Number(t.slice(1)));
    echo(`${prefix}.slow`, () => 300);
    responder.subscribe(`${prefix}.silent`, { callback: () => undefined });
    responder.subscribe(`${prefix}.refuse`, {
      callback: (_err, m) => {
        const { headers, body } = errorReply(
          new MachinaError("OVER_QUOTA", "quota used up", { details: { retryAfterMs: 250 } }),
          "protobuf",
        );
        m.respond(body, { headers });
      },
    });
    // A responder that is not ours: only the micro-service headers, no body.
    responder.subscribe(`${prefix}.foreign`, {
      callback: (_err, m) => {
        const h = makeHeaders();
        h.set("Nats-Service-Error-Code", "409");
        h.set("Nats-Service-Error", "someone else's conflict");
        m.respond(new Uint8Array(0), { headers: h });
      },
    });
    responder.subscribe(`${prefix}.garbage`, {
      callback: (_err, m) => {
        m.respond(new Uint8Array([0xff, 0xff]));
      },
    });
    await responder.flush();
  });

  after(async () => {
    await nc?.close();
    await responder?.close();
  });

  it("resolves each of many concurrent requests with its own reply, whatever order replies arrive in", async () => {
    const client = new MeshClient(nc);
    const triggers = Array.from({ length: 200 }, (_, i) => `t${i}`);
    const replies = await Promise.all(
      triggers.map((t) => client.request(`${prefix}.reverse`, "FireRequest", { trigger: t }, "FireReply")),
    );
    assert.deepEqual(
      replies.map((r) => r.trigger),
      triggers,
    );
    assert.equal(client.inFlight, 0);
    // Many clients on one connection keep to their own replies too.
    const other = new MeshClient(nc);
    const [a, b] = await Promise.all([
      client.request(`${prefix}.echo`, "FireRequest", { trigger: "a" }, "FireReply"),
      other.request(`${prefix}.echo`, "FireRequest", { trigger: "b" }, "FireReply"),
    ]);
    assert.deepEqual([a.trigger, b.trigger], ["a", "b"]);
  });

  it("times a request out on its own deadline, with other time-outs in flight, and ignores the late reply", async () => {
    const client = new MeshClient(nc);
    const t0 = performance.now();
    // A long time-out is armed first; a shorter one must still fire on time.
    const long = client.request(`${prefix}.slow`, "FireRequest", { trigger: "long" }, "FireReply", {
      timeoutMs: 5000,
    });
    const short = client.request(`${prefix}.silent`, "FireRequest", { trigger: "short" }, "FireReply", {
      timeoutMs: 150,
    });
    const late = client.request(`${prefix}.slow`, "FireRequest", { trigger: "late" }, "FireReply", {
      timeoutMs: 100,
    });
    await assert.rejects(late, (e: unknown) => isCode("TIMEOUT")(e) && /within 100 ms/.test((e as Error).message));
    await assert.rejects(short, isCode("TIMEOUT"));
    const waited = performance.now() - t0;
    assert.ok(waited >= 145 && waited < 1000, `short time-out after ${waited.toFixed(0)} ms`);
    assert.equal((await long).trigger, "long");
    await sleep(50); // the late reply to "late" has arrived by now and found nobody waiting
    assert.equal(client.inFlight, 0);
    // The timer keeps working after it went idle.
    await assert.rejects(client.request(`${prefix}.silent`, "Empty", {}, "Ack", { timeoutMs: 50 }), isCode("TIMEOUT"));
  });

  it("turns error replies into the MachinaError they carry, ours and foreign ones", async () => {
    const client = new MeshClient(nc);
    await assert.rejects(
      client.request(`${prefix}.refuse`, "Empty", {}, "Ack"),
      (e: unknown) =>
        isCode("OVER_QUOTA")(e) && (e as MachinaError).details.retryAfterMs === 250 && (e as MachinaError).retryable,
    );
    await assert.rejects(
      client.request(`${prefix}.foreign`, "Empty", {}, "Ack"),
      (e: unknown) => isCode("CONFLICT")(e) && /someone else's conflict/.test((e as Error).message),
    );
    // A reply that is not the expected message is refused, naming the type.
    await assert.rejects(
      client.request(`${prefix}.garbage`, "Empty", {}, "FireReply"),
      (e: unknown) => isCode("BAD_REQUEST")(e) && /FireReply/.test((e as Error).message),
    );
  });

  it("answers UNAVAILABLE when nobody subscribes, and refuses a value that is not the message without sending it", async () => {
    const client = new MeshClient(nc);
    await assert.rejects(
      client.request(`${prefix}.nobody.home`, "Empty", {}, "Ack"),
      (e: unknown) => isCode("UNAVAILABLE")(e) && /no service answers/.test((e as Error).message),
    );
    await assert.rejects(
      client.request(`${prefix}.echo`, "FireRequest", { trigger: 5 } as never, "FireReply"),
      /FireRequest\.trigger: expected a string/,
    );
    assert.equal(client.inFlight, 0);
  });

  it("rejects what is waiting, and everything after, with UNAVAILABLE once the client is closed", async () => {
    const client = new MeshClient(nc);
    const waiting = [1, 2, 3].map((i) =>
      client.request(`${prefix}.silent`, "FireRequest", { trigger: `w${i}` }, "FireReply", { timeoutMs: 5000 }),
    );
    await sleep(20);
    assert.equal(client.inFlight, 3);
    client.close();
    for (const p of waiting)
      await assert.rejects(p, (e: unknown) => isCode("UNAVAILABLE")(e) && /closed/.test(String(e)));
    await assert.rejects(client.request(`${prefix}.echo`, "Empty", {}, "Ack"), isCode("UNAVAILABLE"));
    assert.equal(client.inFlight, 0);
    // The connection is not the client's: others still use it.
    assert.equal(
      (await new MeshClient(nc).request(`${prefix}.echo`, "FireRequest", { trigger: "x" }, "FireReply")).trigger,
      "x",
    );
  });

  it("rejects what is waiting with UNAVAILABLE when the connection closes, and later requests too", async () => {
    const own = await connect({ servers: NATS_URL, noAsyncTraces: true });
    const client = new MeshClient(own);
    assert.equal((await client.request(`${prefix}.echo`, "FireRequest", { trigger: "ok" }, "FireReply")).trigger, "ok");
    const waiting = client.request(`${prefix}.silent`, "Empty", {}, "Ack", { timeoutMs: 5000 });
    await sleep(20);
    await own.close();
    await assert.rejects(waiting, isCode("UNAVAILABLE"));
    await assert.rejects(client.request(`${prefix}.echo`, "Empty", {}, "Ack"), isCode("UNAVAILABLE"));
    assert.equal(client.inFlight, 0);
  });
});
