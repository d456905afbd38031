// Socket writes of a service's NATS connection, coalesced per event-loop turn, against a real
// nats-server: fewer writes for work that resumes in many microtask waves, same messages in the
// same order, and flush() and request/reply unaffected.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { coalesceWrites } from "@machina/runtime";
import { NATS_URL } from "../support/nats-env";

// Write system calls this process has made so far (Linux).
const writeCalls = (): number => Number(/^syscw:\s*(\d+)/m.exec(readFileSync("/proc/self/io", "utf8"))?.[1]);

// Publishes n messages, each after an await (a new microtask wave), all within one turn.
async function publishInWaves(nc: NatsConnection, subject: string, n: number): Promise<number> {
  const before = writeCalls();
  for (let i = 0; i < n; i++) {
    await null;
    nc.publish(subject, String(i));
  }
  const during = writeCalls() - before;
  await nc.flush();
  return during;
}

describe("NATS write coalescing", () => {
  let sub: NatsConnection;
  before(async () => {
    sub = await connect({ servers: NATS_URL });
  });
  after(async () => {
    await sub?.close();
  });

  it("writes once per turn where nats.js wrote once per microtask wave; every message arrives, in order", async () => {
    const plain = await connect({ servers: NATS_URL });
    const merged = await connect({ servers: NATS_URL });
    assert.equal(coalesceWrites(merged), true, "the client has the shape the shim relies on");
    const N = 400;
    for (const [nc, subject] of [
      [plain, "coalesce.plain"],
      [merged, "coalesce.merged"],
    ] as const) {
      const got: string[] = [];
      const s = sub.subscribe(subject, {
        callback: (_e, m) => {
          got.push(m.string());
        },
      });
      await sub.flush();
      const writes = await publishInWaves(nc, subject, N);
      const deadline = Date.now() + 5000;
      while (got.length < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(
        got,
        Array.from({ length: N }, (_, i) => String(i)),
        `${subject}: all, in order`,
      );
      s.unsubscribe();
      if (nc === plain) assert.ok(writes >= N / 2, `without the shim, a write per wave (${writes} for ${N})`);
      else assert.ok(writes <= 5, `with it, writes per turn (${writes} for ${N})`);
    }
    await plain.close();
    await merged.close();
  });

  it("leaves flush(), request/reply and a buffer past its limit working", async () => {
    const nc = await connect({ servers: NATS_URL });
    coalesceWrites(nc);
    const responder = sub.subscribe("coalesce.echo", {
      callback: (_e, m) => {
        m.respond(m.data);
      },
    });
    await sub.flush();
    const replies = await Promise.all(
      Array.from({ length: 50 }, (_, i) => nc.request("coalesce.echo", String(i), { timeout: 2000 })),
    );
    assert.deepEqual(
      replies.map((r) => r.string()),
      Array.from({ length: 50 }, (_, i) => String(i)),
    );
    // One synchronous burst far past the outbound limit is written as it fills, then flushed.
    const big = new Uint8Array(64 * 1024);
    let count = 0;
    const s = sub.subscribe("coalesce.big", {
      callback: () => {
        count++;
      },
    });
    await sub.flush();
    for (let i = 0; i < 200; i++) nc.publish("coalesce.big", big);
    await nc.flush();
    const deadline = Date.now() + 10_000;
    while (count < 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(count, 200);
    s.unsubscribe();
    responder.unsubscribe();
    await nc.close();
  });

  it("declines a client of another shape", () => {
    assert.equal(coalesceWrites({} as NatsConnection), false);
    assert.equal(coalesceWrites({ protocol: { sendCommand() {} } } as unknown as NatsConnection), false);
  });
});
