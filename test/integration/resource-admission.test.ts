// Resource-aware admission against a real nats-server: two replicas of one worker (one durable
// consumer), a small one (resources.ram 4G, cpu 2) and a large one (ram 8G, cpu 4). A task whose
// Machina-Resources exceeds the small replica runs only on the large one; tasks that fit both run
// on both, never more at once on a replica than its free resources cover; tasks without the
// header behave as before; a header that does not parse is dead-lettered naming it; a task no
// replica can cover stays on the stream (waiting, not lost).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { headers as makeHeaders } from "@nats-io/nats-core";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { codec } from "@machina/protos";
import type { RecordBatch } from "@machina/protos";
import {
  RESOURCES_HEADER,
  ResourceGate,
  defineWorker,
  formatResources,
  noResources,
  parseResources,
  publishDurable,
  startService,
} from "@machina/runtime";
import type { RunningService, ServiceSpec } from "@machina/runtime";
import { meshNames } from "@machina/subjects";
import { CONTENT_TYPE_PROTOBUF, DEAD_LETTER_ERROR_HEADER, isMachinaError } from "@machina/wire";
import { eventually } from "../support/eventually";
import { NATS_URL, emptyConfigDir, removeNetwork, uniquePrefix } from "../support/nats-env";

const prefix = uniquePrefix("res");
const names = meshNames(prefix);
const GiB = 1024 ** 3;

/** Which replica ran each batch id, and the most batches each ran at once. */
const ranOn = new Map<string, string>();
const running = new Map<string, number>();
const peak = new Map<string, number>();

const spec: ServiceSpec<Record<string, never>> = {
  name: "aggregate",
  version: "9.9.9",
  description: "resource admission test service",
  httpPort: 0,
  async setup(ctx) {
    const node = ctx.config.mesh.node;
    return {
      workers: [
        defineWorker({
          name: "res-worker",
          stream: "AGGREGATE",
          durable: "res-worker",
          filter: ctx.names.streamSubjects.AGGREGATE,
          message: "RecordBatch",
          concurrency: 8,
          async handle(batch) {
            const now = (running.get(node) ?? 0) + 1;
            running.set(node, now);
            peak.set(node, Math.max(peak.get(node) ?? 0, now));
            // Long enough that the tasks of one round overlap.
            await new Promise((r) => setTimeout(r, 150));
            running.set(node, (running.get(node) ?? 1) - 1);
            ranOn.set(batch.id, node);
          },
        }),
      ],
    };
  },
};

const replicas: RunningService<Record<string, never>>[] = [];
let nc: NatsConnection;

function start(node: string, ram: string, cpu: string): Promise<RunningService<Record<string, never>>> {
  return startService(spec, {
    handleSignals: false,
    configDir: emptyConfigDir(),
    env: {
      MACHINA_NATS_URL: NATS_URL,
      MACHINA_MESH_PREFIX: prefix,
      MACHINA_MESH_NODE: node,
      MACHINA_HTTP_PORT: "0",
      MACHINA_LOG_LEVEL: "silent",
      MACHINA_RESOURCES_RAM: ram,
      MACHINA_RESOURCES_CPU: cpu,
      MACHINA_RESOURCES_GPU: "0",
      MACHINA_RESOURCES_STORAGE: "10G",
      MACHINA_RESOURCES_NETWORK: "0",
    },
  });
}

const encode = codec("RecordBatch");

async function publish(id: string, resources?: string): Promise<void> {
  const h = makeHeaders();
  h.set("Content-Type", CONTENT_TYPE_PROTOBUF);
  h.set("Nats-Msg-Id", id);
  if (resources !== undefined) h.set(RESOURCES_HEADER, resources);
  const batch: Partial<RecordBatch> = { id, type: "website", source: "s", query: "q", taskId: id, records: [] };
  const ack = await nc.request(names.task.aggregate("website"), encode.encode(batch), { headers: h, timeout: 5000 });
  assert.ok(!ack.string().includes('"error"'), ack.string());
}

const node = (id: string) => ranOn.get(id);

describe("resource-aware admission", { timeout: 120_000 }, () => {
  before(async () => {
    nc = await connect({ servers: NATS_URL });
    replicas.push(await start("small", "4G", "2"));
    replicas.push(await start("large", "8G", "4"));
  });

  after(async () => {
    for (const r of replicas) await r.stop();
    await removeNetwork(nc, names);
    await nc.close();
  });

  it("runs a task too large for the small replica only on the large one", async () => {
    const ids = Array.from({ length: 8 }, (_, i) => `big-${i}`);
    for (const id of ids) await publish(id, "ram=6G, cpu=1");
    await eventually("every large task ran", async () => (ids.every((id) => ranOn.has(id)) ? true : undefined), 30_000);
    for (const id of ids) assert.equal(node(id), "large", `${id} ran on ${node(id)}`);
    // 6G of 8G: the large replica never ran two at once.
    assert.equal(peak.get("large"), 1);
  });

  it("spreads tasks that fit both, never beyond either replica's free resources", async () => {
    peak.clear();
    const ids = Array.from({ length: 16 }, (_, i) => `mid-${i}`);
    await Promise.all(ids.map((id) => publish(id, "ram=2G")));
    await eventually("every mid task ran", async () => (ids.every((id) => ranOn.has(id)) ? true : undefined), 30_000);
    const on = (n: string) => ids.filter((id) => node(id) === n).length;
    assert.ok(on("small") > 0 && on("large") > 0, `small ran ${on("small")}, large ${on("large")}`);
    assert.ok((peak.get("small") ?? 0) <= 2, `small ran ${peak.get("small")} at once with room for 2`);
    assert.ok((peak.get("large") ?? 0) <= 4, `large ran ${peak.get("large")} at once with room for 4`);
  });

  it("takes tasks without the header as before, on either replica, as many as the lanes", async () => {
    peak.clear();
    const ids = Array.from({ length: 24 }, (_, i) => `plain-${i}`);
    await Promise.all(ids.map((id) => publish(id)));
    await eventually("every plain task ran", async () => (ids.every((id) => ranOn.has(id)) ? true : undefined), 30_000);
    // Without a header the gate is not asked: more at once than 2G tasks could ever be.
    assert.ok(Math.max(peak.get("small") ?? 0, peak.get("large") ?? 0) > 4, JSON.stringify([...peak]));
  });

  it("dead-letters a header that does not parse, naming it, and keeps serving", async () => {
    await publish("bad-header", "ram=lots");
    const jsm = await jetstreamManager(nc);
    const letter = await eventually(
      "the dead letter",
      async () => {
        const info = await jsm.streams.info(names.streams.DLQ).catch(() => undefined);
        if (info === undefined || info.state.messages === 0) return undefined;
        return (await jsm.streams.getMessage(names.streams.DLQ, { seq: info.state.last_seq })) ?? undefined;
      },
      10_000,
    );
    assert.match(letter.header.get(DEAD_LETTER_ERROR_HEADER) ?? "", /BAD_REQUEST/);
    assert.match(new TextDecoder().decode(letter.data), /Machina-Resources: ram/);
    assert.equal(ranOn.has("bad-header"), false);
    await publish("after-bad", "ram=1G");
    await eventually("a good task after it", async () => (ranOn.has("after-bad") ? true : undefined), 10_000);
  });

  it("publishDurable sends a task's resources as Machina-Resources, and the gate honours them", async () => {
    const js = jetstream(nc);
    await publishDurable(
      js,
      names.task.aggregate("website"),
      "RecordBatch",
      { id: "via-publish", type: "website" },
      {
        msgID: "via-publish",
        resources: formatResources({ ram: 5 * GiB }),
      },
    );
    await eventually("the published task ran", async () => (ranOn.has("via-publish") ? true : undefined), 20_000);
    assert.equal(node("via-publish"), "large");
  });

  it("leaves a task no replica can cover on the stream, waiting", async () => {
    await publish("gpu-task", "gpu=1");
    await new Promise((r) => setTimeout(r, 3_000));
    assert.equal(ranOn.has("gpu-task"), false);
    const jsm = await jetstreamManager(nc);
    const info = await jsm.consumers.info(names.streams.AGGREGATE, "res-worker");
    assert.ok(info.num_pending + info.num_ack_pending >= 1, "the task is still on the stream");
    assert.ok(info.delivered.consumer_seq > info.ack_floor.consumer_seq, "it was offered and given back");
  });
});

describe("Machina-Resources header and gate", () => {
  it("reads kinds, units and millicores, and writes them back", () => {
    const need = parseResources("ram=2G; cpu=500m, gpu=1, storage=10GiB, network=50M");
    assert.deepEqual(need, { ram: 2 * GiB, cpu: 0.5, gpu: 1, storage: 10 * GiB, network: 50 * 1024 ** 2 });
    assert.deepEqual(parseResources(formatResources(need)), need);
  });

  it("refuses unknown kinds (prototype names too), doubles and bad amounts, naming the header", () => {
    for (const [text, pattern] of [
      ["constructor=1", /unknown resource "constructor"; known: cpu, ram, gpu, storage, network/],
      ["__proto__=1", /unknown resource "__proto__"/],
      ["ram=1G,ram=2G", /ram is given twice/],
      ["gpu=0.5", /gpu: "0.5" is not a whole number/],
      ["cpu=two", /cpu: "two" is not cores/],
      ["ram", /"ram" is not kind=amount/],
    ] as const) {
      assert.throws(
        () => parseResources(text),
        (err: unknown) =>
          isMachinaError(err) &&
          err.code === "BAD_REQUEST" &&
          /^Machina-Resources: /.test(err.message) &&
          pattern.test(err.message),
        text,
      );
    }
  });

  it("admits all or nothing, tells busy from never, and gives back on release", () => {
    const gate = new ResourceGate({ ...noResources(), cpu: 2, ram: 4 * GiB });
    assert.equal(gate.take({ ram: 3 * GiB, cpu: 1 }), "taken");
    assert.equal(gate.take({ ram: 2 * GiB }), "busy");
    assert.equal(gate.take({ ram: 5 * GiB }), "never");
    assert.equal(gate.take({ gpu: 1 }), "never");
    // The busy one reserved nothing: 1G and 1 core are still free.
    assert.equal(gate.take({ ram: GiB, cpu: 1 }), "taken");
    assert.equal(gate.take({ cpu: 1 }), "busy");
    gate.release({ ram: 3 * GiB, cpu: 1 });
    assert.deepEqual(gate.inUse(), { ...noResources(), ram: GiB, cpu: 1 });
    assert.equal(gate.take({ ram: 2 * GiB }), "taken");
  });
});
