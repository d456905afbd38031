// A busy second of applied batch ids through the real state bucket: a commit of more ids than one
// KV entry can hold is stored in parts (each under the server's max_payload), and a load reads
// every id back, before and after the second's last part grew.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { RecentBatches, StateStore } from "@machina/aggregate";
import { NATS_URL, uniquePrefix } from "../support/nats-env";

describe("recently applied batch ids in the state bucket", () => {
  let nc: NatsConnection;
  const bucket = `${uniquePrefix("arp")}_state`;

  before(async () => {
    nc = await connect({ servers: NATS_URL });
  });
  after(async () => {
    await (await jetstreamManager(nc)).streams.delete(`KV_${bucket}`).catch(() => undefined);
    await nc?.close();
  });

  it("stores 60,000 ids of one second (about 2.5 MB) in one commit and loads them all", async () => {
    const store = await StateStore.open(nc, jetstream(nc), await jetstreamManager(nc), new Kvm(nc), bucket, 1);
    const at = Date.now();
    const recent = new RecentBatches();
    const ids = Array.from(
      { length: 60_000 },
      (_, i) => `fetch-task-${i.toString(36).padStart(6, "0")}-sitestats-site#0`,
    );
    for (const id of ids) recent.add(id, at);
    const checkpoint = { seq: 1, rec: 0, done: true, out: 0, pub: 0, life: "t", meta: [] };
    const write = { keys: new Map(), outbox: [], recent: recent.takeChanged(), checkpoint, expectRevision: 0 };
    assert.ok(write.recent.size >= 3, `in ${write.recent.size} parts`);
    const rev = await store.commit("win", 0, write);

    recent.add("late-in-the-second", at);
    const grown = recent.takeChanged();
    assert.equal(grown.size, 1, "one part written again");
    await store.commit("win", 0, {
      ...write,
      recent: grown,
      checkpoint: { ...checkpoint, seq: 2 },
      expectRevision: rev,
    });

    const loaded = await store.load("win", 0);
    assert.equal(loaded.checkpoint?.seq, 2);
    const back = new RecentBatches(loaded.recent);
    assert.equal(back.size, 60_001);
    for (const id of [ids[0], ids[29_999], ids[59_999], "late-in-the-second"])
      assert.equal(back.has(id, at + 1000), true, id);
  });
});
