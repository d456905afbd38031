// publishDurable against a real nats-server, through the MeshClient (PubAck on the shared inbox)
// and through a JetStream client: both store, both see duplicates, an expectation that fails is a
// CONFLICT, and a subject no stream captures is UNAVAILABLE (retryable), never a silent loss.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { RetentionPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { JetStreamManager } from "@nats-io/jetstream";
import { codec } from "@machina/protos";
import { MeshClient, publishDurable } from "@machina/runtime";
import { MachinaError, TIMING_HEADER } from "@machina/wire";
import { NATS_URL, uniquePrefix } from "../support/nats-env";

const prefix = uniquePrefix("pd");
const stream = `${prefix.toUpperCase()}_PD`;
let nc: NatsConnection;
let jsm: JetStreamManager;

describe("publishDurable", () => {
  before(async () => {
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: stream, subjects: [`${prefix}.pd.>`], retention: RetentionPolicy.Limits });
  });

  after(async () => {
    await jsm.streams.delete(stream).catch(() => undefined);
    await nc.close();
  });

  for (const via of ["mesh", "jetstream"] as const) {
    it(`stores, reports duplicates and refuses a failed expectation (${via})`, async () => {
      const client = via === "mesh" ? new MeshClient(nc) : jetstream(nc);
      const subject = `${prefix}.pd.${via}`;
      const task = { id: `t-${via}`, source: "s", query: "q" };
      const first = await publishDurable(client, subject, "FetchTask", task, {
        msgID: task.id,
        timing: "fetch=1.5",
        expectEmptySubject: true,
      });
      assert.equal(first.stream, stream);
      assert.ok(first.seq > 0);
      assert.equal(first.duplicate, false);
      const again = await publishDurable(client, subject, "FetchTask", task, { msgID: task.id });
      assert.equal(again.duplicate, true, "the same id within the duplicate window is dropped");
      assert.equal(again.seq, first.seq);

      await assert.rejects(
        publishDurable(
          client,
          subject,
          "FetchTask",
          { ...task, id: "other" },
          { msgID: "other", expectEmptySubject: true },
        ),
        (e: unknown) => e instanceof MachinaError && e.code === "CONFLICT" && e.details.conflict === true,
      );

      const stored = await jsm.streams.getMessage(stream, { seq: first.seq });
      assert.equal(codec("FetchTask").decode(stored!.data).id, task.id);
      assert.equal(stored!.header.get(TIMING_HEADER), "fetch=1.5");
      assert.equal(stored!.header.get("Nats-Msg-Id"), task.id);
      if (client instanceof MeshClient) client.close();
    });

    it(`answers UNAVAILABLE for a subject no stream stores (${via})`, async () => {
      const client = via === "mesh" ? new MeshClient(nc) : jetstream(nc);
      await assert.rejects(
        publishDurable(client, `${prefix}.nostream.${via}`, "FetchTask", { id: "x" }, { msgID: "x" }),
        (e: unknown) =>
          e instanceof MachinaError && e.code === "UNAVAILABLE" && e.retryable && e.details.dependency === "nats",
      );
      if (client instanceof MeshClient) client.close();
    });
  }

  it("keeps many publishes in flight on one client and matches each PubAck to its message", async () => {
    const client = new MeshClient(nc);
    const acks = await Promise.all(
      Array.from({ length: 500 }, (_, i) =>
        publishDurable(client, `${prefix}.pd.many.${i % 7}`, "FetchTask", { id: `m${i}` }, { msgID: `m${i}` }),
      ),
    );
    const seqs = new Set(acks.map((a) => a.seq));
    assert.equal(seqs.size, 500, "every message got its own sequence");
    for (const i of [0, 123, 499]) {
      const m = await jsm.streams.getMessage(stream, { seq: acks[i].seq });
      assert.equal(codec("FetchTask").decode(m!.data).id, `m${i}`);
    }
    client.close();
  });
});
