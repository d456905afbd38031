// Invoke takes config heads live (in-process vertex and invoke, real nats-server): a lead added to
// a constant ledger by patch is in the next preview and ledger listing, a query set's new query
// and resources are in the tasks a forced tick publishes, a patch naming an unknown ledger is
// refused with invoke's own message. Triggers: a timer's new interval shows in invoke.triggers
// and it fires on it, a trigger added by patch fires, a removed one stops, and a tick under way
// when its trigger and a query set go finishes what is left. Ledgers: a new kv ledger takes
// edits, a kv ledger's new field is accepted, a removed and re-added kv ledger gets its stored
// leads back, a self ledger's new producer gives its next refresh. A restart comes up at the head.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { invokeService, parseTickRecord, type InvokeConfig } from "@machina/invoke";
import type { JsonObject, TriggerInfo } from "@machina/protos";
import {
  MeshClient,
  RESOURCES_HEADER,
  defineEndpoint,
  parseResources,
  startService,
  type RunningService,
  type ServiceSpec,
} from "@machina/runtime";
import { meshNames } from "@machina/subjects";
import { vertexService, type VertexConfig } from "@machina/vertex";
import { MachinaError } from "@machina/wire";
import { chainDriver, type ChainDriver, type PatchOp } from "../support/live-config";
import { eventually } from "../support/eventually";
import { NATS_URL, removeNetwork, uniquePrefix } from "../support/nats-env";
import { writeConfig } from "../support/service-procs";

const prefix = uniquePrefix("invlive");
const names = meshNames(prefix);
// Within this long a head reaches invoke and vertex hears it (heartbeats are 300 ms here).
const PROPAGATION_MS = 10_000;
// Leads of the ledger a long tick runs over (× 5 queries, one publish at a time).
const BULK_LEADS = 2_000;

const env = {
  MACHINA_NATS_URL: NATS_URL,
  MACHINA_MESH_PREFIX: prefix,
  MACHINA_HTTP_PORT: "0",
  MACHINA_LOG_LEVEL: "silent",
  MACHINA_VERTEX_HEARTBEAT_MS: "300",
  MACHINA_VERTEX_MONITORING_INTERVAL_MS: "0",
  MACHINA_VERTEX_DASHBOARD_PORT: "0",
  // One task at a time: the bulk tick lasts long enough for a patch to land while it runs.
  MACHINA_INVOKE_MAX_IN_FLIGHT: "1",
};

/** Rows each fake producer answers (a self ledger's `from`). */
const producers: Record<string, JsonObject[]> = {
  rows_a: [{ domain: "a1.example" }, { domain: "a2.example" }],
  rows_b: [{ domain: "b1.example" }],
};

/** A stand-in for compute: `compute.get.rows_a` and `.rows_b` answer their rows in one page. */
const fakeCompute: ServiceSpec<Record<string, never>> = {
  name: "compute",
  version: "0.0.0",
  description: "rows for self ledgers",
  httpPort: 0,
  async setup() {
    return {
      endpoints: Object.keys(producers).map((name) =>
        defineEndpoint({
          name,
          subject: names.computeGet(name),
          request: "ComputeRequest",
          reply: "ComputeReply",
          description: `rows of ${name}`,
          async handler() {
            return { name, rows: producers[name], next: "" };
          },
        }),
      ),
    };
  },
};

const bulkLeads = Array.from({ length: BULK_LEADS }, (_, i) => `  - domain: bulk${i}.example\n`).join("");

describe("live config: invoke", { timeout: 120_000 }, () => {
  let vertex: RunningService<VertexConfig>;
  let invoke: RunningService<InvokeConfig>;
  let compute: RunningService<Record<string, never>>;
  let nc: NatsConnection;
  let client: MeshClient;
  let configDir: string;
  const opts = (node: string) => ({ handleSignals: false, configDir, env: { ...env, MACHINA_MESH_NODE: node } });

  const chain = (): ChainDriver => chainDriver(client, names, { author: "invoke live test", timeoutMs: 10000 });
  const head = () => chain().head();
  const patch = (ops: PatchOp[]) => chain().patch(ops);
  const applied = (ops: PatchOp[]) => chain().applied(ops, "invoke-1");
  const preview = (querySet = "sites_stats") =>
    client.request(names.invoke.buildQuerySet, "BuildQuerySetRequest", { querySet }, "BuildQuerySetReply");
  const triggers = async (): Promise<Map<string, TriggerInfo>> =>
    new Map(
      (await client.request(names.invoke.triggers, "Empty", {}, "TriggersReply")).triggers.map((t) => [t.name, t]),
    );
  const fire = (trigger: string) =>
    client.request(names.invoke.fire, "FireRequest", { trigger, force: true }, "FireReply", { timeoutMs: 60_000 });
  const ledger = (name: string) =>
    client.request(names.invoke.ledger("list"), "LedgerRequest", { name, limit: 1000 }, "Ledger");
  const put = (name: string, leads: { id: string; args: JsonObject }[]) =>
    client.request(names.invoke.ledger("put"), "LedgerRequest", { name, leads }, "LedgerEditReply");
  /** Tick times recorded for a trigger in the ticks bucket. */
  const tickTimes = async (trigger: string): Promise<number[]> => {
    const kv = await new Kvm(nc).open(names.buckets.invokeTicks);
    const out: number[] = [];
    for await (const key of await kv.keys(`${trigger}.>`)) {
      const e = await kv.get(key);
      const rec = e === null || e.operation !== "PUT" ? null : parseTickRecord(e.string());
      if (rec !== null) out.push(rec.tick);
    }
    return out.sort();
  };

  before(async () => {
    configDir = writeConfig({
      "invoke/ledgers/sites.yaml":
        "lead_id: domain\nfields: { domain: string }\nleads:\n  - domain: a.example\n  - domain: b.example\n",
      "invoke/ledgers/accounts.yaml": "source: kv\nlead_id: domain\nfields: { domain: string }\n",
      "invoke/ledgers/found.yaml":
        "source: self\nlead_id: domain\nfields: { domain: string }\nfrom: { computation: rows_a }\nrefresh: discover\n",
      "invoke/ledgers/bulk.yaml": `lead_id: domain\nfields: { domain: string }\nleads:\n${bulkLeads}`,
      "invoke/query_sets/sites_stats.yaml": "source: sitestats\nqueries: [site]\nledger: sites\n",
      "invoke/query_sets/accounts_stats.yaml": "source: sitestats\nqueries: [site]\nledger: accounts\n",
      "invoke/query_sets/found_stats.yaml": "source: sitestats\nqueries: [site]\nledger: found\n",
      "invoke/query_sets/bulk_a.yaml": "source: sitestats\nqueries: [q0, q1, q2, q3, q4]\nledger: bulk\n",
      "invoke/query_sets/bulk_b.yaml": "source: sitestats\nqueries: [site]\nledger: bulk\n",
      "invoke/triggers/manual.yaml": "type: manual\nquery_sets: [sites_stats]\n",
      "invoke/triggers/discover.yaml": "type: manual\nquery_sets: [found_stats]\n",
      "invoke/triggers/bulk.yaml": "type: manual\nquery_sets: [bulk_a, bulk_b]\n",
      // Since start, not on the epoch grid: its next fire is a day after the start, whatever the clock says.
      "invoke/triggers/daily.yaml":
        "type: timer\nduration: 1d\nquantize: false\nrun_on_start: false\nquery_sets: [sites_stats]\n",
    });
    vertex = await startService(vertexService, opts("vertex-1"));
    compute = await startService(fakeCompute, opts("compute-1"));
    invoke = await startService(invokeService, opts("invoke-1"));
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    client = new MeshClient(nc);
  });

  after(async () => {
    await invoke?.stop();
    await compute?.stop();
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
    await applied([
      { op: "add", path: "/invoke/ledgers/sites/leads/-", value: { domain: "c.example" } },
      { op: "add", path: "/invoke/query_sets/sites_stats/queries/-", value: "pages" },
      { op: "add", path: "/invoke/query_sets/sites_stats/resources", value: { ram: "1G" } },
    ]);
    const tasks = (await preview()).tasks;
    assert.deepEqual(
      tasks.map((t) => `${t.lead.id}/${t.query}`),
      ["a.example/site", "a.example/pages", "b.example/site", "b.example/pages", "c.example/site", "c.example/pages"],
    );
    assert.equal((await ledger("sites")).total, 3);
    // The query set's new resources go out on the tasks it publishes.
    const fired = await fire("manual");
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
        /ledger: unknown ledger "nope" \(known: accounts, bulk, found, sites\)/.test(e.message),
    );
    assert.equal(await head(), before);
  });

  it("explains a trigger key no file or patch sets as invoke's schema default", async () => {
    const e = await client.request(
      names.config.explain,
      "ConfigExplainRequest",
      { key: "invoke.triggers.manual.run_on_start" },
      "ConfigExplainReply",
    );
    assert.deepEqual([e.layer, e.value], ["schema default", true]);
  });

  it("reschedules a timer whose interval a patch changes: the next fire time moves and it fires on it", async () => {
    const was = (await triggers()).get("daily");
    assert.ok(was !== undefined && was.nextFire > Date.now() + 3_600_000, `a day away: ${JSON.stringify(was)}`);
    assert.equal(was.lastTickId, "");
    await applied([{ op: "replace", path: "/invoke/triggers/daily/duration", value: "1s" }]);
    const now = (await triggers()).get("daily");
    assert.equal(now?.schedule, "every 1s, since start");
    // Armed on the new interval: within a second or so, not a day.
    assert.ok(now !== undefined && now.nextFire < Date.now() + 60_000, `next fire ${now?.nextFire}`);
    const first = await eventually(
      "a tick of the rescheduled timer",
      async () => {
        const t = (await triggers()).get("daily");
        return t?.lastTickId.startsWith("daily@") && t.lastState === "done" ? t.lastTickId : undefined;
      },
      PROPAGATION_MS,
    );
    await eventually(
      "another tick a second later",
      async () => {
        const t = (await triggers()).get("daily");
        return t !== undefined && t.lastTickId !== first ? true : undefined;
      },
      PROPAGATION_MS,
    );
  });

  it("fires a trigger added by patch, and stops one a patch removes", async () => {
    await applied([
      {
        op: "add",
        path: "/invoke/triggers/fresh",
        value: { type: "timer", duration: "1d", quantize: false, query_sets: ["sites_stats"] },
      },
      { op: "remove", path: "/invoke/triggers/daily" },
    ]);
    const removedAt = Date.now();
    const listed = await triggers();
    assert.ok(listed.has("fresh") && !listed.has("daily"), [...listed.keys()].join(", "));
    // run_on_start: a trigger that starts being scheduled fires its current tick, as at start.
    await eventually(
      "the new trigger's tick",
      async () => ((await triggers()).get("fresh")?.lastState === "done" ? true : undefined),
      PROPAGATION_MS,
    );
    // At a tick a second it would have fired again by now; no tick of it is newer than its removal.
    await new Promise((r) => setTimeout(r, 2_500));
    const ticks = await tickTimes("daily");
    assert.ok(ticks.length > 0, "it did fire before");
    assert.ok(
      ticks.every((t) => t <= removedAt),
      `ticks after removal at ${removedAt}: ${ticks.filter((t) => t > removedAt).join(", ")}`,
    );
  });

  it("lets a tick under way finish when a patch removes its trigger and a query set it was to publish", async () => {
    const ticking = fire("bulk");
    let done = false;
    void ticking.then(() => (done = true)).catch(() => undefined);
    await applied([
      { op: "remove", path: "/invoke/triggers/bulk" },
      { op: "remove", path: "/invoke/query_sets/bulk_b" },
    ]);
    assert.equal(done, false, "the patch landed while the tick ran");
    const res = await ticking;
    // bulk_a in full, bulk_b (gone) skipped.
    assert.deepEqual([res.state, res.tasks], ["done", BULK_LEADS * 5]);
    assert.equal((await triggers()).has("bulk"), false);
  });

  it("takes a new kv ledger, a new field of one, and a removed and re-added one's stored leads", async () => {
    await applied([
      { op: "add", path: "/invoke/ledgers/shops", value: { source: "kv", lead_id: "domain" } },
      {
        op: "add",
        path: "/invoke/query_sets/shops_stats",
        value: { source: "sitestats", queries: ["site"], ledger: "shops" },
      },
    ]);
    assert.equal((await put("shops", [{ id: "s1.example", args: {} }])).written, 1);
    assert.deepEqual(
      (await preview("shops_stats")).tasks.map((t) => t.lead.id),
      ["s1.example"],
    );

    await put("accounts", [{ id: "x.example", args: {} }]);
    const refused = await put("accounts", [{ id: "y.example", args: { tier: "gold" } }]);
    assert.match(refused.rejected[0]?.error ?? "", /undeclared field "tier"/);
    await applied([{ op: "add", path: "/invoke/ledgers/accounts/fields/tier", value: "string?" }]);
    assert.equal((await put("accounts", [{ id: "y.example", args: { tier: "gold" } }])).written, 1);
    assert.deepEqual(
      (await ledger("accounts")).leads.map((l) => l.id),
      ["x.example", "y.example"],
    );

    // Gone from the config, its leads stay in the bucket; back in it, they are loaded again.
    const shops = (await client.request(names.config.get, "ConfigGetRequest", { path: "/invoke" }, "ConfigDocument"))
      .value as Record<string, Record<string, unknown>>;
    await applied([
      { op: "remove", path: "/invoke/query_sets/shops_stats" },
      { op: "remove", path: "/invoke/ledgers/shops" },
    ]);
    await assert.rejects(ledger("shops"), (e: unknown) => e instanceof MachinaError && e.code === "NOT_FOUND");
    await applied([
      { op: "add", path: "/invoke/ledgers/shops", value: shops.ledgers.shops },
      { op: "add", path: "/invoke/query_sets/shops_stats", value: shops.query_sets.shops_stats },
    ]);
    assert.deepEqual(
      (await ledger("shops")).leads.map((l) => l.id),
      ["s1.example"],
    );
  });

  it("refreshes a self ledger from the producer a patch names", async () => {
    await fire("discover");
    assert.deepEqual(
      (await ledger("found")).leads.map((l) => l.id),
      ["a1.example", "a2.example"],
    );
    await applied([{ op: "replace", path: "/invoke/ledgers/found/from/computation", value: "rows_b" }]);
    // The leads it had stay until its next refresh, which reads the new producer.
    assert.equal((await ledger("found")).total, 2);
    await fire("discover");
    assert.deepEqual(
      (await ledger("found")).leads.map((l) => l.id),
      ["b1.example"],
    );
  });

  it("comes up at the head after a restart", async () => {
    const at = await head();
    await invoke.stop();
    invoke = await startService(invokeService, opts("invoke-1"));
    assert.equal(invoke.ctx.node.configHead, at);
    assert.deepEqual([...(await triggers()).keys()].sort(), ["discover", "fresh", "manual"]);
    assert.equal((await preview()).tasks.length, 6);
    assert.deepEqual(
      (await ledger("accounts")).leads.map((l) => l.id),
      ["x.example", "y.example"],
    );
  });
});
