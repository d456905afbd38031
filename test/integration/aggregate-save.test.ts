// Aggregate's front doors against a real nats-server: aggregate.save (durably queued before it
// answers, 404 naming the declared types for unknown and prototype names, 400 naming a record a
// stateful kind cannot take, with nothing queued), and invoke's handler splitting one fetched
// answer with two types into each type's aggregator (a passthrough one and a partitioned one).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { invokeService } from "@machina/invoke";
import type { AggregateConfig } from "@machina/aggregate";
import type { QueryResponse } from "@machina/protos";
import { MeshClient, publishDurable, startService } from "@machina/runtime";
import type { RunningService } from "@machina/runtime";
import { meshNames } from "@machina/subjects";
import { MachinaError, readErrorReply } from "@machina/wire";
import { NATS_URL, uniquePrefix } from "../support/nats-env";
import { aggregateConfig, collectStore, dropNetwork, eventually, startAggregate } from "../support/aggregate-harness";
import type { StoreCollector } from "../support/aggregate-harness";

const prefix = uniquePrefix("aggs");
const names = meshNames(prefix);
const TTL_MS = 3_000;
const configDir = aggregateConfig({
  "website.yaml": "aggregator: passthrough\n",
  "company.yaml": "aggregator: forward_fill\nkey: name\npartitions: 2\n",
  "held.yaml": "aggregator: forward_fill\nkey: id\n",
});

let nc: NatsConnection;
let client: MeshClient;
let agg: RunningService<AggregateConfig>;
let invoke: RunningService<unknown> | undefined;
let store: StoreCollector;
let holding: NodeJS.Timeout | undefined;

const queuedOn = async (subject: string) => {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(names.streams.AGGREGATE, { subjects_filter: subject });
  return Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
};

/** The error a raw request to `subject` answers with. */
async function refusal(subject: string, body: unknown): Promise<MachinaError> {
  const msg = await nc.request(subject, JSON.stringify(body), { timeout: 5_000 });
  const err = readErrorReply(msg);
  assert.ok(err, `${subject} answered without an error: ${msg.string()}`);
  return err;
}

before(async () => {
  nc = await connect({ servers: NATS_URL });
  client = new MeshClient(nc);
  // Another "replica" holds the lease of held.0 before ours starts, so its records stay queued.
  const kv = await new Kvm(nc).create(names.buckets.aggregateLeases, { history: 1, ttl: TTL_MS });
  await kv.put("lease.held.0", "someone_else");
  holding = setInterval(() => void kv.put("lease.held.0", "someone_else").catch(() => undefined), 500);
  agg = await startAggregate({ configDir, prefix, node: "save-1", leaseTtlMs: TTL_MS });
  store = await collectStore(nc, names);
});

after(async () => {
  clearInterval(holding);
  await store?.stop();
  await invoke?.stop();
  await agg?.stop();
  client?.close();
  await dropNetwork(nc, names);
  await nc?.close();
});

describe("aggregate.save", () => {
  it("answers once the records are durably queued, and they are aggregated once an owner takes the partition", async () => {
    const ack = await client.request(
      names.aggregateSave("held"),
      "RecordBatch",
      {
        id: "h1",
        records: [
          { id: "a", x: 1 },
          { id: "a", x: null },
        ],
      },
      "Ack",
    );
    assert.deepEqual(ack, { ok: true, id: "h1" });
    assert.equal(
      await queuedOn(names.task.aggregatePartition("held", 0)),
      1,
      "queued on its partition before the answer",
    );
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(store.batches().filter((b) => b.type === "held").length, 0, "no owner yet: nothing aggregated");

    // The other replica hands the lease back: ours takes it and works off the queue.
    clearInterval(holding);
    await new Kvm(nc).open(names.buckets.aggregateLeases).then((kv) => kv.delete("lease.held.0"));
    const out = await eventually("the held batch aggregated", async () =>
      store.batches().find((b) => b.type === "held"),
    );
    assert.deepEqual(out.records, [
      { id: "a", x: 1 },
      { id: "a", x: 1 },
    ]);
    assert.equal(out.source, "manual", "a saved batch without a source is `manual`");
    assert.ok(out.fetchedAt > 0, "and is stamped with the time it was saved");
  });

  it("refuses to start a replica that would change the partitions of a type with state, saying what to do", async () => {
    const changed = aggregateConfig({
      "website.yaml": "aggregator: passthrough\n",
      "company.yaml": "aggregator: forward_fill\nkey: name\npartitions: 2\n",
      "held.yaml": "aggregator: forward_fill\nkey: id\npartitions: 2\n",
    });
    await assert.rejects(
      startAggregate({ configDir: changed, prefix, node: "save-2", leaseTtlMs: TTL_MS }),
      (e: unknown) =>
        e instanceof MachinaError &&
        e.code === "CONFLICT" &&
        /type held has aggregate state laid out as forward_fill in 1 partition by id, but the config asks for forward_fill in 2 partitions by id/.test(
          e.message,
        ) &&
        /nats stream purge KV_\w+ --subject '\$KV\.\w+\.held\.>'/.test(e.message),
    );
  });

  it("answers 404 naming the declared types for an unknown type and for prototype names, and keeps serving", async () => {
    for (const t of ["nope", "constructor", "__proto__", "toString"]) {
      const err = await refusal(`${prefix}.aggregate.save.${t}`, { records: [{ domain: "a.example" }] });
      assert.equal(err.code, "NOT_FOUND", t);
      assert.equal(err.status, 404);
      assert.match(err.message, /declared: company, held, website/, t);
    }
    const ack = await client.request(
      names.aggregateSave("website"),
      "RecordBatch",
      { id: "w-after", records: [{ domain: "a.example" }] },
      "Ack",
    );
    assert.equal(ack.ok, true);
  });

  it("answers 400 naming a record a stateful kind cannot take, and queues none of the batch", async () => {
    const before = await queuedOn(`${names.task.aggregate("company")}.*`);
    const err = await refusal(names.aggregateSave("company"), {
      id: "c-bad",
      records: [{ name: "ACME", size: 1 }, { size: 2 }],
    });
    assert.equal(err.code, "BAD_REQUEST");
    assert.match(err.message, /record 1: key field name needs a text, number or boolean value, got nothing/);
    assert.match(err.message, /nothing was queued/);
    assert.equal(await queuedOn(`${names.task.aggregate("company")}.*`), before);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(store.batches().filter((b) => b.id.startsWith("c-bad")).length, 0);
  });
});

describe("invoke's handler", () => {
  it("splits one answer with two types and routes each to its own aggregator", async () => {
    invoke = (await startService(invokeService, {
      configDir: aggregateConfig({}),
      handleSignals: false,
      env: {
        MACHINA_NATS_URL: NATS_URL,
        MACHINA_MESH_PREFIX: prefix,
        MACHINA_MESH_NODE: "invoke-1",
        MACHINA_HTTP_PORT: "0",
        MACHINA_LOG_LEVEL: "error",
      },
    })) as RunningService<unknown>;
    const response = {
      requestId: "task-7",
      taskId: "task-7",
      source: "multi",
      query: "both",
      lead: { id: "l", args: {} },
      data: {
        types: {
          website: {
            records: [
              { domain: "x.example", rank: 1 },
              { domain: "y.example", rank: 2 },
            ],
          },
          company: {
            records: [
              { name: "X Corp", size: 10 },
              { name: "Y Corp", size: null },
              { name: "X Corp", size: null },
            ],
          },
          empty: { records: [] },
        },
      },
      meta: { start: 1, end: 1_700_000_000_000 },
    };
    await publishDurable(
      client,
      names.task.fetched("multi"),
      "QueryResponses",
      { responses: [response as unknown as QueryResponse] },
      { msgID: "task-7" },
    );
    const got = await eventually("both types stored", async () => {
      const bs = store.batches().filter((b) => b.taskId === "task-7");
      const company = bs.filter((b) => b.type === "company").flatMap((b) => b.records);
      return bs.some((b) => b.type === "website") && company.length === 3 ? bs : undefined;
    });
    const website = got.filter((b) => b.type === "website");
    assert.deepEqual(
      website.map((b) => b.id),
      ["task-7:website"],
    );
    assert.deepEqual(website[0].records, response.data.types.website.records);
    // company is forward_fill in 2 partitions: its records come back split by key, rows kept.
    const company = got
      .filter((b) => b.type === "company")
      .flatMap((b) => b.records.map((r, i) => ({ seq: b.firstSeq + i, r, source: b.source, fetchedAt: b.fetchedAt })))
      .sort((a, b) => a.seq - b.seq);
    assert.deepEqual(
      company.map((c) => [c.seq, c.r]),
      [
        [0, { name: "X Corp", size: 10 }],
        [1, { name: "Y Corp", size: null }],
        [2, { name: "X Corp", size: 10 }],
      ],
    );
    assert.ok(company.every((c) => c.source === "multi" && c.fetchedAt === 1_700_000_000_000));
    assert.equal(got.filter((b) => b.type === "empty").length, 0, "a type without records is not sent");
  });
});
