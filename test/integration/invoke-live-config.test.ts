// Invoke takes config heads live (in-process vertex and invoke, real nats-server): a lead added to
// a constant ledger by patch is in the next preview and ledger listing, a query set's new query
// and resources are in the tasks a forced tick publishes, a patch naming an unknown ledger is refused with invoke's own
// message, and a trigger change is stored but leaves invoke on its previous head (drift in
// vertex.nodes) until a restart, which comes up at the head.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { invokeService, type InvokeConfig } from "@machina/invoke";
import type { ConfigPatch, NodeInfo } from "@machina/protos";
import { MeshClient, RESOURCES_HEADER, parseResources, startService, type RunningService } from "@machina/runtime";
import { meshNames } from "@machina/subjects";
import { vertexService, type VertexConfig } from "@machina/vertex";
import { MachinaError } from "@machina/wire";
import { eventually } from "../support/eventually";
import { NATS_URL, removeNetwork, uniquePrefix } from "../support/nats-env";
import { writeConfig } from "../support/service-procs";

const prefix = uniquePrefix("invlive");
const names = meshNames(prefix);

const env = {
  MACHINA_NATS_URL: NATS_URL,
  MACHINA_MESH_PREFIX: prefix,
  MACHINA_HTTP_PORT: "0",
  MACHINA_LOG_LEVEL: "silent",
  MACHINA_VERTEX_HEARTBEAT_MS: "300",
  MACHINA_VERTEX_MONITORING_INTERVAL_MS: "0",
  MACHINA_VERTEX_DASHBOARD_PORT: "0",
};

describe("live config: invoke", { timeout: 60_000 }, () => {
  let vertex: RunningService<VertexConfig>;
  let invoke: RunningService<InvokeConfig>;
  let nc: NatsConnection;
  let client: MeshClient;
  let configDir: string;
  const opts = (node: string) => ({ handleSignals: false, configDir, env: { ...env, MACHINA_MESH_NODE: node } });

  const head = async () =>
    (await client.request(names.config.get, "ConfigGetRequest", { path: "" }, "ConfigDocument")).head;
  const patch = async (ops: { op: string; path: string; value?: unknown }[]): Promise<ConfigPatch> =>
    client.request(
      names.config.patch,
      "ConfigPatchRequest",
      { parent: await head(), ops: ops as never, author: "invoke live test" },
      "ConfigPatch",
      { timeoutMs: 10_000 },
    );
  const invokeHead = async () =>
    (await client.request(names.vertex.nodes, "Empty", {}, "NodeList")).nodes.find((n: NodeInfo) => n.id === "invoke-1")
      ?.configHead;
  const preview = () =>
    client.request(
      names.invoke.buildQuerySet,
      "BuildQuerySetRequest",
      { querySet: "sites_stats" },
      "BuildQuerySetReply",
    );

  before(async () => {
    configDir = writeConfig({
      "invoke/ledgers/sites.yaml":
        "lead_id: domain\nfields: { domain: string }\nleads:\n  - domain: a.example\n  - domain: b.example\n",
      "invoke/query_sets/sites_stats.yaml": "source: sitestats\nqueries: [site]\nledger: sites\n",
      "invoke/triggers/manual.yaml": "type: manual\nquery_sets: [sites_stats]\n",
    });
    vertex = await startService(vertexService, opts("vertex-1"));
    invoke = await startService(invokeService, opts("invoke-1"));
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    client = new MeshClient(nc);
  });

  after(async () => {
    await invoke?.stop();
    await vertex?.stop();
    client?.close();
    if (nc !== undefined) {
      await removeNetwork(nc, names);
      await nc.close();
    }
  });

  it("takes a new lead of a constant ledger and a changed query set without a restart", async () => {
    assert.deepEqual(
      (await preview()).tasks.map((t) => t.lead.id),
      ["a.example", "b.example"],
    );
    const p = await patch([
      { op: "add", path: "/invoke/ledgers/sites/leads/-", value: { domain: "c.example" } },
      { op: "add", path: "/invoke/query_sets/sites_stats/queries/-", value: "pages" },
      { op: "add", path: "/invoke/query_sets/sites_stats/resources", value: { ram: "1G" } },
    ]);
    await eventually(
      "invoke at the new head",
      async () => ((await invokeHead()) === p.hash ? true : undefined),
      5_000,
      50,
    );
    const tasks = (await preview()).tasks;
    assert.deepEqual(
      tasks.map((t) => `${t.lead.id}/${t.query}`),
      ["a.example/site", "a.example/pages", "b.example/site", "b.example/pages", "c.example/site", "c.example/pages"],
    );
    const listed = await client.request(names.invoke.ledger("list"), "LedgerRequest", { name: "sites" }, "Ledger");
    assert.equal(listed.total, 3);
    // The query set's new resources go out on the tasks it publishes.
    const fired = await client.request(
      names.invoke.fire,
      "FireRequest",
      { trigger: "manual", force: true },
      "FireReply",
      {
        timeoutMs: 10_000,
      },
    );
    assert.equal(fired.tasks, 6);
    const jsm = await jetstreamManager(nc);
    const task = await jsm.streams.getMessage(names.streams.FETCH, {
      last_by_subj: names.task.fetch("sitestats", "pages", "c.example"),
    });
    assert.ok(task, "the new lead's task is on the FETCH stream");
    assert.deepEqual(parseResources(task.header.get(RESOURCES_HEADER)), { ram: 1024 ** 3 });
  });

  it("refuses a query set naming an unknown ledger with invoke's own message", async () => {
    const before = await head();
    await assert.rejects(
      patch([{ op: "replace", path: "/invoke/query_sets/sites_stats/ledger", value: "nope" }]),
      (e: unknown) =>
        e instanceof MachinaError &&
        e.code === "BAD_REQUEST" &&
        /ledger: unknown ledger "nope" \(known: sites\)/.test(e.message),
    );
    assert.equal(await head(), before);
  });

  it("stores a trigger change but stays on its head until a restart, which takes it", async () => {
    const was = await invokeHead();
    const p = await patch([
      { op: "add", path: "/invoke/triggers/later", value: { type: "manual", query_sets: ["sites_stats"] } },
    ]);
    // Drift: the head moved, invoke did not.
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(await invokeHead(), was);
    assert.notEqual(was, p.hash);
    await invoke.stop();
    invoke = await startService(invokeService, opts("invoke-1"));
    await eventually(
      "the restarted invoke at the head",
      async () => ((await invokeHead()) === p.hash ? true : undefined),
      5_000,
      50,
    );
    const triggers = await client.request(names.invoke.triggers, "Empty", {}, "TriggersReply");
    assert.deepEqual(triggers.triggers.map((t) => t.name).sort(), ["later", "manual"]);
    // The restart started from the head, leads and query set included.
    assert.equal((await preview()).tasks.length, 6);
  });
});
