// Covers @machina/wire's protocol-line encoder: the same bytes nats-core's TextEncoder makes for any
// text, and, installed, a real nats-server still routes what it sends (non-ASCII subjects and
// reply subjects, headers, JetStream publish and ack) exactly as before.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { headers as makeHeaders } from "@nats-io/nats-core";
import type { NatsConnection } from "@nats-io/nats-core";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { encodeCommand, useFastCommandEncoding } from "@machina/wire";
import { NATS_URL, uniquePrefix } from "../support/nats-env";

const te = new TextEncoder();

describe("fast protocol-line encoding", () => {
  it("makes the bytes TextEncoder makes, for ASCII, multi-byte and broken UTF-16 text", () => {
    const samples = [
      "",
      "PUB a.b 5\r\n",
      "HPUB t.grüße _INBOX.ÄÖÜ.1 22 40\r\n",
      "PUB 数据.抓取 12\r\n",
      "PUB emoji.😀 0\r\n",
      "PUB lone.\ud800.surrogate 0\r\n", // TextEncoder and Buffer both write U+FFFD
      "PUB lone.\udc00 0\r\n",
    ];
    let seed = 11;
    const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    for (let i = 0; i < 2000; i++) {
      let s = "";
      for (let j = rnd(80); j > 0; j--) s += String.fromCharCode(rnd(10) < 7 ? 32 + rnd(95) : rnd(0x10000));
      samples.push(s);
    }
    for (const s of samples) assert.deepEqual([...encodeCommand(s)], [...te.encode(s)], JSON.stringify(s));
    const b = new Uint8Array([1, 2, 3]);
    assert.equal(encodeCommand(b), b, "bytes pass through unchanged");
  });

  describe("installed, against a real nats-server", () => {
    let nc: NatsConnection;
    const prefix = uniquePrefix("fce");

    before(async () => {
      assert.equal(useFastCommandEncoding(), true, "nats-core's handler has the shape relied on");
      assert.equal(useFastCommandEncoding(), true, "installing twice is harmless");
      nc = await connect({ servers: NATS_URL });
    });
    after(async () => {
      await nc?.close();
    });

    it("routes non-ASCII subjects and replies, with headers, request and reply intact", async () => {
      const subject = `${prefix}.grüße.数据`;
      const seen: string[] = [];
      nc.subscribe(subject, {
        callback: (_e, m) => {
          seen.push(m.subject);
          const h = makeHeaders();
          h.set("Echo", m.headers?.get("Ask") ?? "");
          m.respond(m.data, { headers: h });
        },
      });
      await nc.flush();
      const h = makeHeaders();
      h.set("Ask", "ÿes");
      const r = await nc.request(subject, te.encode("hallo wörld"), { headers: h, timeout: 2000 });
      assert.equal(new TextDecoder().decode(r.data), "hallo wörld");
      assert.equal(r.headers?.get("Echo"), "ÿes");
      assert.deepEqual(seen, [subject]);
      const many = await Promise.all(
        Array.from({ length: 200 }, (_, i) => nc.request(subject, te.encode(`n${i}`), { timeout: 2000 })),
      );
      assert.deepEqual(
        many.map((m) => new TextDecoder().decode(m.data)),
        Array.from({ length: 200 }, (_, i) => `n${i}`),
      );
    });

    it("publishes to JetStream and acks, so nothing is redelivered", async () => {
      const jsm = await jetstreamManager(nc);
      const stream = `${prefix.toUpperCase()}_FCE`;
      await jsm.streams.add({ name: stream, subjects: [`${prefix}.js.>`] });
      try {
        const js = jetstream(nc);
        for (let i = 0; i < 50; i++) await js.publish(`${prefix}.js.ä${i}`, te.encode(String(i)), { msgID: `m${i}` });
        await jsm.consumers.add(stream, { durable_name: "c", ack_policy: AckPolicy.Explicit, ack_wait: 2_000_000_000 });
        const c = await js.consumers.get(stream, "c");
        const got: string[] = [];
        const batch = await c.fetch({ max_messages: 50, expires: 3000 });
        for await (const m of batch) {
          got.push(m.subject);
          m.ack();
          if (got.length === 50) break;
        }
        await nc.flush();
        assert.equal(got.length, 50);
        assert.equal(got[7], `${prefix}.js.ä7`);
        await new Promise((r) => setTimeout(r, 2500)); // past ack_wait: unacked messages would come back
        const info = await jsm.consumers.info(stream, "c");
        assert.equal(info.num_ack_pending, 0);
        assert.equal(info.num_redelivered, 0);
        assert.equal(info.num_pending, 0);
      } finally {
        await jsm.streams.delete(stream);
      }
    });
  });
});
