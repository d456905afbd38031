// Invoke's ledgers and ticks against the real nats-server: kv ledgers edited through
// invoke.ledger.* and seen by a second replica at once, a self ledger refreshed from an endpoint
// that returns rows, leads that do not fit left out and reported, forced ticks, tick records
// that stop a re-fire from publishing twice, and the cross-check of query sets against fetch.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { fetchService } from "@machina/fetch";
import { KvLedgers, compileLedgers, invokeService, parseTickRecord, type InvokeConfig } from "@machina/invoke";
import { silentLogger } from "@machina/log";
import type { JsonObject } from "@machina/protos";
import { MeshClient, defineEndpoint, startService, type RunningService, type ServiceSpec } from "@machina/runtime";
import { meshNames } from "@machina/subjects";
import { NATS_URL, removeNetwork, uniquePrefix } from "../support/nats-env";
import { eventually, writeConfig } from "../support/service-procs";

const prefix = uniquePrefix("ledgers");
const names = meshNames(prefix);

/** What the fake producer answers, paged by 2 rows; the test changes it between refreshes. */
let producerRows: JsonObject[] = [];

/** A stand-in for compute: `compute.get.test_rows` answers `producerRows` in pages. */
const fakeCompute: ServiceSpec<Record<string, never>> = {
  name: "compute",
  version: "0.0.0",
  description: "test rows",
  httpPort: 0,
  async setup() {
    return {
      endpoints: [
        defineEndpoint({
          name: "rows",
          subject: names.computeGet("test_rows"),
          request: "ComputeRequest",
          reply: "ComputeReply",
          description: "rows for a self ledger",
          async handler(req) {
            const from = req.page === "" ? 0 : Number(req.page);
            const size = Math.min(req.limit || 100, 2);
            const rows = producerRows.slice(from, from + size);
            return { name: "test_rows", rows, next: from + size < producerRows.length ? String(from + size) : "" };
          },
        }),
      ],
    };
  },
};

const site = `name: sitestats
limiter: unlimited
manager: { type: http, base_url: "http://127.0.0.1:9" }
queries:
  site: { path: "/{{lead.domain}}", extract: { s: { type: website, path: "." } } }
  pages: { path: "/{{lead.domain}}/p", extract: { s: { type: website, path: "." } } }
`;

const configDir = writeConfig({
  "fetch/sources/sitestats.yaml": site,
  "invoke/ledgers/accounts.yaml": "source: kv\nlead_id: domain\nfields: { domain: string, tier: string? }\n",
  "invoke/ledgers/found.yaml":
    "source: self\nlead_id: domain\nfields: { domain: string }\nfrom: { computation: test_rows, page_size: 2 }\nrefresh: discover\n",
  "invoke/ledgers/fixed.yaml": "leads:\n  - id: a\n    domain: a.example\n  - id: b\n    domain: b.example\n",
  "invoke/query_sets/accounts_site.yaml": "source: sitestats\nqueries: [site]\nledger: accounts\n",
  "invoke/query_sets/found_site.yaml": "source: sitestats\nqueries: [site, pages]\nledger: found\n",
  "invoke/query_sets/fixed_site.yaml": "source: sitestats\nqueries: [site]\nledger: fixed\n",
  "invoke/triggers/discover.yaml": "type: manual\nquery_sets: [found_site]\n",
  "invoke/triggers/accounts.yaml": "type: manual\nquery_sets: [accounts_site]\n",
  "invoke/triggers/fixed.yaml": "type: timer\nduration: 1h\nrun_on_start: false\nquery_sets: [fixed_site]\n",
  "invoke/triggers/hourly.yaml": "type: timer\nduration: 1h\nrun_on_start: false\nquery_sets: [fixed_site]\n",
});

const env = {
  MACHINA_INVOKE_PREVIEW_MAX_TASKS: "3",
  MACHINA_NATS_URL: NATS_URL,
  MACHINA_MESH_PREFIX: prefix,
  MACHINA_HTTP_PORT: "0",
  MACHINA_LOG_LEVEL: "silent",
};

describe("invoke: ledgers and ticks", { timeout: 120_000 }, () => {
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let client: MeshClient;
  let invoke: RunningService<InvokeConfig>;
  let compute: RunningService<Record<string, never>>;
  let fetch: RunningService<unknown> | undefined;

  before(async () => {
    compute = await startService(fakeCompute, { handleSignals: false, configDir, env });
    invoke = await startService(invokeService, { handleSignals: false, configDir, env });
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    jsm = await jetstreamManager(nc);
    client = new MeshClient(nc);
  });

  after(async () => {
    await fetch?.stop();
    await invoke?.stop();
    await compute?.stop();
    if (nc !== undefined) await removeNetwork(nc, names);
    await client?.close();
    await nc?.close();
  });

  const queued = async (source: string) =>
    (await jsm.streams.info(names.streams.FETCH, { subjects_filter: names.task.fetchOf(source) })).state.subjects ?? {};

  it("edits a kv ledger: put, patch, delete, get and list in pages, each misfit answered by id", async () => {
    const put = await client.request(
      names.invoke.ledger("put"),
      "LedgerRequest",
      {
        name: "accounts",
        leads: [
          { id: "c.example", args: { tier: "gold" } },
          { id: "", args: { domain: "a.example" } },
          { id: "b.example", args: {} },
          { id: "bad.example", args: { tier: 3 } },
          { id: "x.example", args: { domain: "y.example" } },
          { id: "typo.example", args: { teir: "gold" } },
        ],
      },
      "LedgerEditReply",
    );
    assert.equal(put.written, 3);
    assert.equal(put.total, 3);
    assert.deepEqual(put.rejected, [
      { id: "bad.example", error: 'field "tier": expected string, got 3' },
      { id: "x.example", error: 'id "x.example" and field "domain" ("y.example") disagree' },
      { id: "typo.example", error: 'undeclared field "teir" (declared: domain, tier)' },
    ]);

    const patch = await client.request(
      names.invoke.ledger("patch"),
      "LedgerRequest",
      {
        name: "accounts",
        leads: [
          { id: "a.example", args: { tier: "silver" } },
          { id: "c.example", args: { tier: null } },
          { id: "nope.example", args: { tier: "x" } },
        ],
      },
      "LedgerEditReply",
    );
    assert.equal(patch.written, 2);
    assert.deepEqual(patch.rejected, [{ id: "nope.example", error: 'no lead "nope.example" in ledger "accounts"' }]);

    const one = await client.request(
      names.invoke.ledger("get"),
      "LedgerRequest",
      { name: "accounts", id: "a.example" },
      "Ledger",
    );
    assert.deepEqual(one.leads, [{ id: "a.example", args: { domain: "a.example", tier: "silver" } }]);
    assert.equal(one.source, "kv");
    assert.deepEqual(one.fields, ["domain", "tier"]);

    const p1 = await client.request(
      names.invoke.ledger("list"),
      "LedgerRequest",
      { name: "accounts", limit: 2 },
      "Ledger",
    );
    assert.deepEqual(
      p1.leads.map((l) => l.id),
      ["a.example", "b.example"],
    );
    assert.notEqual(p1.next, "");
    const p2 = await client.request(
      names.invoke.ledger("list"),
      "LedgerRequest",
      { name: "accounts", limit: 2, page: p1.next },
      "Ledger",
    );
    assert.deepEqual(p2.leads, [{ id: "c.example", args: { domain: "c.example" } }]);
    assert.equal(p2.next, "");

    const del = await client.request(
      names.invoke.ledger("delete"),
      "LedgerRequest",
      { name: "accounts", ids: ["b.example", "zz.example"] },
      "LedgerEditReply",
    );
    assert.equal(del.deleted, 1);
    assert.equal(del.total, 2);
    assert.deepEqual(del.rejected, [{ id: "zz.example", error: 'no lead "zz.example" in ledger "accounts"' }]);
  });

  it("answers bad ledger requests with errors that say what to fix, and keeps serving", async () => {
    const bad = async (op: string, body: Record<string, unknown>) => {
      try {
        await client.request(names.invoke.ledger(op), "LedgerRequest", body, "Ledger");
      } catch (err) {
        return err as { code: string; message: string };
      }
      assert.fail(`${op} ${JSON.stringify(body)} should fail`);
    };
    assert.match((await bad("get", {})).message, /missing "name"; known ledgers: accounts, fixed, found/);
    const unknown = await bad("list", { name: "constructor" });
    assert.equal(unknown.code, "NOT_FOUND");
    assert.match(unknown.message, /unknown ledger "constructor" \(known: accounts, fixed, found\)/);
    assert.match((await bad("list", { name: "accounts", limit: 5000 })).message, /limit: expected 1 to 1000/);
    assert.match((await bad("list", { name: "accounts", page: "%%" })).message, /page: "%%" is not a page token/);
    assert.match(
      (await bad("put", { name: "fixed", leads: [{ id: "z" }] })).message,
      /"fixed" is a constant ledger; only kv ledgers are edited/,
    );
    assert.match((await bad("put", { name: "accounts" })).message, /missing "leads": nothing to change/);
    assert.equal((await bad("get", { name: "accounts", id: "none" })).code, "NOT_FOUND");
    const still = await client.request(names.invoke.ledger("get"), "LedgerRequest", { name: "accounts" }, "Ledger");
    assert.equal(still.total, 2);
  });

  it("shows an edit to a second replica's copy at once, through the watch", async () => {
    const other = compileLedgers([
      {
        name: "accounts",
        origins: ["test"],
        doc: { source: "kv", lead_id: "domain", fields: { domain: "string", tier: "string?" } },
      },
    ]);
    const nc2 = await connect({ servers: NATS_URL, noAsyncTraces: true });
    try {
      const replica = await KvLedgers.open(new Kvm(nc2), names.buckets.invokeLedgers, other, silentLogger());
      await replica.start();
      const copy = other.get("accounts")!;
      assert.equal(copy.loaded, true);
      assert.deepEqual(copy.store.ids(), ["a.example", "c.example"]);
      const t0 = Date.now();
      await client.request(
        names.invoke.ledger("put"),
        "LedgerRequest",
        { name: "accounts", leads: [{ id: "new.example", args: { tier: "gold" } }] },
        "LedgerEditReply",
      );
      await eventually(
        "the other replica sees the put",
        async () => (copy.store.json("new.example") ? true : undefined),
        5_000,
        5,
      );
      const seenMs = Date.now() - t0;
      assert.ok(seenMs < 2_000, `seen after ${seenMs} ms`);
      await client.request(
        names.invoke.ledger("delete"),
        "LedgerRequest",
        { name: "accounts", ids: ["new.example"] },
        "LedgerEditReply",
      );
      await eventually(
        "the other replica sees the delete",
        async () => (copy.store.json("new.example") === undefined ? true : undefined),
        5_000,
        5,
      );
      replica.stop();
    } finally {
      await nc2.close();
    }
  });

  it("refreshes a self ledger from its producer on its trigger, leaving misfits out, then publishes its tasks", async () => {
    producerRows = [
      { domain: "s1.example", extra: 1 },
      { domain: "s2.example" },
      { name: "no domain" },
      { domain: 42 },
      { domain: "s1.example" },
    ];
    const fired = await client.request(names.invoke.fire, "FireRequest", { trigger: "discover" }, "FireReply");
    assert.equal(fired.state, "done");
    assert.equal(fired.tasks, 4); // 2 leads × 2 queries
    const l = await client.request(names.invoke.ledger("list"), "LedgerRequest", { name: "found" }, "Ledger");
    // Undeclared fields of a producer's rows are dropped, not refused.
    assert.deepEqual(l.leads, [
      { id: "s1.example", args: { domain: "s1.example" } },
      { id: "s2.example", args: { domain: "s2.example" } },
    ]);
    assert.equal(l.rejectedTotal, 3);
    assert.deepEqual(
      l.rejected.map((p) => [p.id, p.error]),
      [
        ["row 2", 'missing its id field "domain"'],
        ["42", 'field "domain": expected string, got 42'],
        ["s1.example", "row 4: repeats the id of an earlier row"],
      ],
    );
    assert.equal(Object.keys(await queued("sitestats")).length >= 4, true);

    // The next refresh follows the producer: a row gone is a lead gone.
    producerRows = [{ domain: "s2.example" }, { domain: "s3.example" }];
    const again = await client.request(
      names.invoke.fire,
      "FireRequest",
      { trigger: "discover", force: true },
      "FireReply",
    );
    assert.equal(again.tasks, 4);
    const l2 = await client.request(names.invoke.ledger("list"), "LedgerRequest", { name: "found" }, "Ledger");
    assert.deepEqual(
      l2.leads.map((x) => x.id),
      ["s2.example", "s3.example"],
    );
    assert.equal(l2.rejectedTotal, 0);
  });

  it("fires a grid tick once per network however often it is asked; force makes a new tick", async () => {
    const first = await client.request(names.invoke.fire, "FireRequest", { trigger: "fixed" }, "FireReply");
    assert.equal(first.tasks, 2);
    assert.equal(first.duplicates, 0);
    assert.equal(first.tickId, `fixed@${first.tick}`);
    assert.equal(first.tick % 3_600_000, 0);
    const second = await client.request(names.invoke.fire, "FireRequest", { trigger: "fixed" }, "FireReply");
    assert.deepEqual(
      { tasks: second.tasks, duplicates: second.duplicates, state: second.state, tick: second.tick },
      { tasks: 0, duplicates: 2, state: "done", tick: first.tick },
    );
    const forced = await client.request(
      names.invoke.fire,
      "FireRequest",
      { trigger: "fixed", force: true },
      "FireReply",
    );
    assert.equal(forced.tasks, 2);
    assert.equal(forced.duplicates, 0);
    assert.equal(forced.tickId, `fixed@${forced.tick}+force`);
    assert.notEqual(forced.tick, first.tick);
    // Both forced tasks replaced the grid tick's still-queued ones (no fetch runs here).
    assert.equal(forced.superseded, 2);

    const triggers = await client.request(names.invoke.triggers, "Empty", {}, "TriggersReply");
    const fixed = triggers.triggers.find((t) => t.name === "fixed")!;
    assert.equal(fixed.type, "timer");
    assert.equal(fixed.nextFire, first.tick + 3_600_000);
    assert.equal(fixed.lastTickId, forced.tickId);
    assert.equal(fixed.lastState, "done");
    const discover = triggers.triggers.find((t) => t.name === "discover")!;
    assert.deepEqual([discover.type, discover.nextFire, discover.ledgers], ["manual", 0, ["found"]]);
  });

  it("previews a query set's tasks, and refuses a preview too large for one reply", async () => {
    const small = await client.request(
      names.invoke.buildQuerySet,
      "BuildQuerySetRequest",
      { querySet: "fixed_site" },
      "BuildQuerySetReply",
    );
    assert.deepEqual(
      small.tasks.map((t) => t.lead.id),
      ["a", "b"],
    );
    await assert.rejects(
      client.request(
        names.invoke.buildQuerySet,
        "BuildQuerySetRequest",
        { querySet: "found_site" },
        "BuildQuerySetReply",
      ),
      (e: Error) => /builds 4 tasks; a preview shows at most 3 .*invoke.ledger.list/.test(e.message),
    );
  });

  it("starts a tick afresh over a record it cannot read, instead of giving up on it", async () => {
    const tick = Math.floor(Date.now() / 3_600_000) * 3_600_000;
    const ticks = await new Kvm(nc).open(names.buckets.invokeTicks);
    await ticks.put(`hourly.${tick}`, "not a tick record");
    const fired = await client.request(names.invoke.fire, "FireRequest", { trigger: "hourly" }, "FireReply");
    assert.deepEqual([fired.tick, fired.tasks, fired.state], [tick, 2, "done"]);
    const stored = parseTickRecord((await ticks.get(`hourly.${tick}`))!.string());
    assert.equal(stored?.state, "done");
    assert.equal(stored?.published, 2);
  });

  it("turns /readyz false naming a query set whose source or query fetch does not serve", async () => {
    const probe = async () => {
      const r = await globalThis.fetch(`http://127.0.0.1:${invoke.probePort}/readyz`);
      return { status: r.status, body: (await r.json()) as { waitingFor?: Record<string, { reason: string }> } };
    };
    // Without fetch nothing is concluded.
    assert.equal((await probe()).status, 200);
    // A fetch that serves sitestats with only `site`: found_site asks for `pages` too.
    const fetchDir = writeConfig({ "fetch/sources/sitestats.yaml": site.replace(/ {2}pages:.*\n/, "") });
    fetch = await startService(fetchService, { handleSignals: false, configDir: fetchDir, env });
    const inv2 = await startService(invokeService, { handleSignals: false, configDir, env });
    try {
      const r = await eventually(
        "invoke's readyz reports the query set",
        async () => {
          const res = await globalThis.fetch(`http://127.0.0.1:${inv2.probePort}/readyz`);
          return res.status === 503
            ? ((await res.json()) as { waitingFor: Record<string, { reason: string }> })
            : undefined;
        },
        10_000,
      );
      assert.match(
        r.waitingFor["query sets"].reason,
        /query set "found_site": source "sitestats" has no query "pages" \(known: site\)/,
      );
    } finally {
      await inv2.stop();
    }
  });
});
