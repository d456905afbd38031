// The entity-wide computations against the real services: data (real Cassandra) and compute
// in-process on one prefix, clean records created through data.create.clean. top_n (order, n,
// ties in key order, where, entities without the field), stats (known numbers and percentiles,
// one entity, no data), matching (every match once across pages and across data.keys pages,
// projections, page tokens), a code-defined computation from the config tree calling stats, and
// the BAD_REQUESTs naming args.<field>, limit and page.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import cassandra from "cassandra-driver";
import { computeService, type ComputeConfig } from "@machina/compute";
import { dataService, type DataConfig } from "@machina/data";
import type { ComputeReply, JsonObject } from "@machina/protos";
import { MeshClient, startService, type RunningService } from "@machina/runtime";
import { isMachinaError } from "@machina/wire";
import { adminCqlClient, dataServiceEnv } from "../support/cassandra-env";
import { NATS_URL, uniquePrefix, removeNetwork } from "../support/nats-env";
import { writeConfig } from "../support/service-procs";

const prefix = uniquePrefix("entities");
const keyspace = `${prefix.replace(/[^a-z0-9_]/g, "_")}_ks`;

const siteType = `key: [domain]
fields: { domain: text, category: text, visits: bigint, rank: int, active: boolean }
merge: { default: latest_non_null }
clean_window: 1h
`;

const visitType = `key: [id]
fields: { id: text, n: int }
merge: { default: latest_non_null }
clean_window: 1h
`;

const emptyType = `key: [id]
fields: { id: text, n: int }
merge: { default: latest_non_null }
clean_window: 1h
`;

// Three sites tie at 300 visits (s02, s03, s08) and one has none (s06).
const SITES: JsonObject[] = [
  { domain: "s01", category: "news", visits: 100, rank: 5, active: true },
  { domain: "s02", category: "news", visits: 300, rank: 4, active: true },
  { domain: "s03", category: "shop", visits: 300, rank: 3, active: false },
  { domain: "s04", category: "shop", visits: 50, rank: 9, active: true },
  { domain: "s05", category: "blog", visits: 1000, rank: 1, active: true },
  { domain: "s06", category: "blog", rank: 7, active: false },
  { domain: "s07", category: "news", visits: 20, rank: 8, active: true },
  { domain: "s08", category: "shop", visits: 300, rank: 2, active: true },
  { domain: "s09", category: "blog", visits: 0, rank: 10, active: false },
  { domain: "s10", category: "news", visits: 700, rank: 6, active: true },
];
const VALUES = [100, 300, 300, 50, 1000, 20, 300, 0, 700];

// More entities than one data.keys page (1000): n = i mod 7.
const VISITS = 2500;

// A code-defined computation in the temp config tree: a category's share of all visits, from two
// nested stats calls.
const categoryShare = `export default {
  description: "Share of all site visits that a category's sites get: args {category}",
  args: (f) => f.object({ category: f.name() }),
  async run({ category }, ctx) {
    const all = await ctx.call("stats", { type: "site", field: "visits", percentiles: [50] });
    const one = await ctx.call("stats", { type: "site", field: "visits", where: { category }, percentiles: [50] });
    const total = all.rows[0].sum;
    return [{ category, visits: one.rows[0].sum, share: total === 0 ? null : one.rows[0].sum / total }];
  },
};
`;

describe("compute: top_n, stats, matching and code computations", () => {
  let data: RunningService<DataConfig>;
  let compute: RunningService<ComputeConfig>;
  let nc: NatsConnection;
  let client: MeshClient;
  let admin: cassandra.Client;

  before(async () => {
    const { client: c, localDataCenter } = await adminCqlClient();
    admin = c;
    const configDir = writeConfig({
      "data/types/site.yaml": siteType,
      "data/types/visit.yaml": visitType,
      "data/types/empty.yaml": emptyType,
      "compute/computations/category_share.ts": categoryShare,
    });
    const env = dataServiceEnv(NATS_URL, prefix, keyspace, localDataCenter);
    data = await startService(dataService, { handleSignals: false, configDir, env });
    compute = await startService(computeService, { handleSignals: false, configDir, env });
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    client = new MeshClient(nc);
    const names = data.ctx.names;
    await client.request(names.data("create", "clean", "site"), "CreateRequest", { records: SITES }, "WriteReply");
    for (let i = 0; i < VISITS; i += 1000) {
      const records = Array.from({ length: Math.min(1000, VISITS - i) }, (_, j) => ({
        id: `v${i + j}`,
        n: (i + j) % 7,
      }));
      await client.request(names.data("create", "clean", "visit"), "CreateRequest", { records }, "WriteReply", {
        timeoutMs: 60_000,
      });
    }
  });

  after(async () => {
    await compute?.stop();
    await data?.stop();
    client?.close();
    if (nc !== undefined) {
      await removeNetwork(nc, data.ctx.names);
      await nc.close();
    }
    await admin?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await admin?.shutdown();
  });

  const get = (name: string, args: Record<string, unknown>, limit = 0, page = ""): Promise<ComputeReply> =>
    client.request(
      compute.ctx.names.computeGet(name),
      "ComputeRequest",
      { args: args as JsonObject, limit, page },
      "ComputeReply",
      { timeoutMs: 30_000 },
    );

  const refused = (code: "BAD_REQUEST" | "NOT_FOUND", message: RegExp) => (err: unknown) => {
    assert.ok(isMachinaError(err, code), String(err));
    assert.match((err as Error).message, message);
    return true;
  };

  const domains = (reply: ComputeReply) => reply.rows.map((r) => r.domain);

  describe("top_n", () => {
    it("answers the n highest by default, ties in key order, whole records", async () => {
      const reply = await get("top_n", { type: "site", field: "visits", n: 3 });
      assert.deepEqual(domains(reply), ["s05", "s10", "s02"]);
      assert.equal(reply.next, "");
      assert.equal(reply.rows[0].visits, 1000);
      assert.equal(reply.rows[0].category, "blog");
      assert.equal(reply.rows[0].rank, 1);
      const five = await get("top_n", { type: "site", field: "visits", n: 5 });
      assert.deepEqual(domains(five), ["s05", "s10", "s02", "s03", "s08"]);
      const byDefault = await get("top_n", { type: "site", field: "visits" });
      assert.deepEqual(domains(byDefault), ["s05", "s10", "s02", "s03", "s08", "s01", "s04", "s07", "s09"]);
    });

    it("answers the lowest with order asc, ties still in key order", async () => {
      const asc = await get("top_n", { type: "site", field: "visits", n: 3, order: "asc" });
      assert.deepEqual(domains(asc), ["s09", "s07", "s04"]);
      const ties = await get("top_n", { type: "site", field: "visits", n: 6, order: "asc" });
      assert.deepEqual(domains(ties), ["s09", "s07", "s04", "s01", "s02", "s03"]);
      const ranks = await get("top_n", { type: "site", field: "rank", n: 2, order: "asc" });
      assert.deepEqual(domains(ranks), ["s05", "s08"]);
    });

    it("skips entities without the field, and ranks booleans as 0/1", async () => {
      const all = await get("top_n", { type: "site", field: "visits", n: 1000 });
      assert.equal(all.rows.length, 9);
      assert.ok(!domains(all).includes("s06"));
      const flags = await get("top_n", { type: "site", field: "active", n: 3, order: "asc" });
      assert.deepEqual(domains(flags), ["s03", "s06", "s09"]);
    });

    it("filters with where and returns the fields asked", async () => {
      const shops = await get("top_n", {
        type: "site",
        field: "visits",
        where: { category: "shop" },
        fields: ["category"],
      });
      assert.deepEqual(shops.rows, [
        { domain: "s03", category: "shop", visits: 300 },
        { domain: "s08", category: "shop", visits: 300 },
        { domain: "s04", category: "shop", visits: 50 },
      ]);
      const ops = await get("top_n", {
        type: "site",
        field: "visits",
        where: { visits: { gte: 100 }, category: { in: ["news", "blog"] } },
        fields: ["rank"],
      });
      assert.deepEqual(ops.rows, [
        { domain: "s05", rank: 1, visits: 1000 },
        { domain: "s10", rank: 6, visits: 700 },
        { domain: "s02", rank: 4, visits: 300 },
        { domain: "s01", rank: 5, visits: 100 },
      ]);
      const none = await get("top_n", { type: "site", field: "visits", where: { category: "nope" } });
      assert.deepEqual(none.rows, []);
      const empty = await get("top_n", { type: "empty", field: "n" });
      assert.deepEqual(empty.rows, []);
    });

    it("ranks a type larger than one data.keys page", async () => {
      const reply = await get("top_n", { type: "visit", field: "n", n: 3, fields: ["n"] });
      // n = 6 for v6, v13, v20…; ties in key order, which for text keys is lexical.
      const sixes = Array.from({ length: VISITS }, (_, i) => i)
        .filter((i) => i % 7 === 6)
        .map((i) => `v${i}`)
        .sort();
      assert.deepEqual(
        reply.rows,
        sixes.slice(0, 3).map((id) => ({ id, n: 6 })),
      );
    });

    it("refuses bad args naming the field", async () => {
      await assert.rejects(
        get("top_n", { type: "site", field: "visits", n: 0 }),
        refused("BAD_REQUEST", /^computation "top_n": args\.n: expected an integer from 1 to 1000, got 0$/),
      );
      await assert.rejects(
        get("top_n", { type: "site", field: "visits", n: 1001 }),
        refused("BAD_REQUEST", /^computation "top_n": args\.n: /),
      );
      await assert.rejects(
        get("top_n", { type: "site", field: "visits", order: "down" }),
        refused("BAD_REQUEST", /^computation "top_n": args\.order: expected one of desc, asc, got "down"$/),
      );
      await assert.rejects(
        get("top_n", { type: "site", field: "category" }),
        refused(
          "BAD_REQUEST",
          /^computation "top_n": args\.field: field "category" of type site is text, not a number; its numeric fields: active, rank, visits$/,
        ),
      );
      await assert.rejects(
        get("top_n", { type: "site", field: "visit" }),
        refused(
          "BAD_REQUEST",
          /^computation "top_n": args\.field: type site has no field "visit" \(did you mean "visits"\?\)/,
        ),
      );
      await assert.rejects(
        get("top_n", { type: "site", field: "visits", fields: ["rank", "colour"] }),
        refused("BAD_REQUEST", /^computation "top_n": args\.fields\[1\]: type site has no field "colour"/),
      );
      await assert.rejects(
        get("top_n", { type: "site", field: "visits", where: { visits: { gtt: 1 } } }),
        refused("BAD_REQUEST", /^computation "top_n": args\.where\.visits\.gtt: unknown key \(did you mean "gt"\?\)/),
      );
      await assert.rejects(
        get("top_n", { type: "site", field: "visits", where: { visits: { gt: "many" } } }),
        refused(
          "BAD_REQUEST",
          /^computation "top_n": args\.where\.visits\.gt: field "visits" of type site is bigint; expected a number/,
        ),
      );
      await assert.rejects(get("top_n", { type: "nosuch", field: "n" }), refused("NOT_FOUND", /nosuch/));
    });
  });

  describe("stats", () => {
    const mean = VALUES.reduce((s, v) => s + v, 0) / VALUES.length;
    const stddev = Math.sqrt(VALUES.reduce((s, v) => s + (v - mean) ** 2, 0) / VALUES.length);

    it("summarizes a field across the type, percentiles interpolated between ranks", async () => {
      const reply = await get("stats", { type: "site", field: "visits" });
      assert.equal(reply.rows.length, 1);
      const row = reply.rows[0];
      assert.deepEqual(Object.keys(row), [
        "count",
        "missing",
        "min",
        "max",
        "mean",
        "stddev",
        "sum",
        "p50",
        "p90",
        "p99",
      ]);
      assert.equal(row.count, 9);
      assert.equal(row.missing, 1);
      assert.equal(row.min, 0);
      assert.equal(row.max, 1000);
      assert.equal(row.sum, 2770);
      assert.ok(Math.abs((row.mean as number) - mean) < 1e-9);
      assert.ok(Math.abs((row.stddev as number) - stddev) < 1e-9);
      // sorted: 0 20 50 100 300 300 300 700 1000; rank (n − 1) × p / 100.
      assert.equal(row.p50, 300);
      assert.ok(Math.abs((row.p90 as number) - 760) < 1e-9, String(row.p90));
      assert.ok(Math.abs((row.p99 as number) - 976) < 1e-9, String(row.p99));
    });

    it("answers the percentiles asked, p99.9 as p99_9", async () => {
      const reply = await get("stats", { type: "site", field: "visits", percentiles: [0, 25, 100, 99.9, 25] });
      const row = reply.rows[0];
      assert.deepEqual(
        Object.keys(row).filter((k) => k.startsWith("p")),
        ["p0", "p25", "p100", "p99_9"],
      );
      assert.equal(row.p0, 0);
      assert.equal(row.p25, 50);
      assert.equal(row.p100, 1000);
      assert.ok(Math.abs((row.p99_9 as number) - 997.6) < 1e-9, String(row.p99_9));
    });

    it("filters with where: one entity, and none", async () => {
      const one = await get("stats", { type: "site", field: "visits", where: { domain: "s05" } });
      assert.deepEqual(one.rows, [
        {
          count: 1,
          missing: 0,
          min: 1000,
          max: 1000,
          mean: 1000,
          stddev: 0,
          sum: 1000,
          p50: 1000,
          p90: 1000,
          p99: 1000,
        },
      ]);
      const blogs = await get("stats", {
        type: "site",
        field: "visits",
        where: { category: "blog" },
        percentiles: [50],
      });
      assert.deepEqual(blogs.rows, [
        { count: 2, missing: 1, min: 0, max: 1000, mean: 500, stddev: 500, sum: 1000, p50: 500 },
      ]);
      const nothing = {
        count: 0,
        missing: 0,
        min: null,
        max: null,
        mean: null,
        stddev: null,
        sum: 0,
        p50: null,
        p90: null,
        p99: null,
      };
      const none = await get("stats", { type: "site", field: "visits", where: { category: "nope" } });
      assert.deepEqual(none.rows, [nothing]);
      const empty = await get("stats", { type: "empty", field: "n" });
      assert.deepEqual(empty.rows, [nothing]);
      const missingOnly = await get("stats", { type: "site", field: "visits", where: { visits: { exists: false } } });
      assert.deepEqual(missingOnly.rows, [{ ...nothing, missing: 1 }]);
    });

    it("summarizes a type larger than one data.keys page", async () => {
      const reply = await get("stats", { type: "visit", field: "n", percentiles: [50] });
      const n = Array.from({ length: VISITS }, (_, i) => i % 7);
      assert.equal(reply.rows[0].count, VISITS);
      assert.equal(
        reply.rows[0].sum,
        n.reduce((s, v) => s + v, 0),
      );
      assert.equal(reply.rows[0].p50, 3);
    });

    it("refuses bad args naming the field", async () => {
      await assert.rejects(
        get("stats", { type: "site", field: "visits", percentiles: [50, 101] }),
        refused(
          "BAD_REQUEST",
          /^computation "stats": args\.percentiles\[1\]: expected a number from 0 to 100, got 101$/,
        ),
      );
      await assert.rejects(
        get("stats", { type: "site", field: "visits", percentiles: ["p50"] }),
        refused(
          "BAD_REQUEST",
          /^computation "stats": args\.percentiles\[0\]: expected a number from 0 to 100, got "p50"$/,
        ),
      );
      await assert.rejects(
        get("stats", { type: "site", field: "visits", percentiles: [] }),
        refused("BAD_REQUEST", /^computation "stats": args\.percentiles: name at least one percentile/),
      );
      await assert.rejects(
        get("stats", { type: "site", field: "domain" }),
        refused("BAD_REQUEST", /^computation "stats": args\.field: field "domain" of type site is text, not a number/),
      );
      await assert.rejects(
        get("stats", { type: "site", field: "visits", where: { town: "x" } }),
        refused("BAD_REQUEST", /^computation "stats": args\.where\.town: type site has no field "town"/),
      );
    });
  });

  describe("matching", () => {
    // Every page of a matching, following next until "".
    async function allPages(args: Record<string, unknown>, limit: number): Promise<JsonObject[][]> {
      const pages: JsonObject[][] = [];
      let page = "";
      do {
        const reply = await get("matching", args, limit, page);
        assert.equal(reply.name, "matching");
        assert.ok(reply.rows.length <= limit, `a page holds at most ${limit} rows`);
        pages.push(reply.rows);
        page = reply.next;
        assert.ok(pages.length <= 200, "paging does not terminate");
      } while (page !== "");
      return pages;
    }

    it("lists the matching entities' records, or their keys and the fields asked", async () => {
      const reply = await get("matching", { type: "site", where: { category: "shop" } });
      assert.equal(reply.next, "");
      assert.deepEqual(domains(reply).sort(), ["s03", "s04", "s08"]);
      const s03 = reply.rows.find((r) => r.domain === "s03");
      assert.equal(s03?.visits, 300);
      assert.equal(s03?.rank, 3);
      const projected = await get("matching", {
        type: "site",
        where: { visits: { gte: 300 }, active: true },
        fields: ["visits"],
      });
      assert.deepEqual(
        projected.rows.sort((a, b) => String(a.domain).localeCompare(String(b.domain))),
        [
          { domain: "s02", visits: 300 },
          { domain: "s05", visits: 1000 },
          { domain: "s08", visits: 300 },
          { domain: "s10", visits: 700 },
        ],
      );
      const none = await get("matching", { type: "site", where: { category: "nope" } });
      assert.deepEqual(none, { name: "matching", rows: [], cached: false, next: "" });
    });

    it("pages over more than one data.keys page, every match exactly once", async () => {
      const expected = Array.from({ length: VISITS }, (_, i) => i)
        .filter((i) => i % 7 !== 0)
        .map((i) => `v${i}`)
        .sort();
      const pages = await allPages({ type: "visit", where: { n: { ne: 0 } }, fields: ["n"] }, 1000);
      assert.deepEqual(
        pages.map((p) => p.length),
        [1000, 1000, expected.length - 2000],
      );
      const ids = pages.flat().map((r) => r.id as string);
      assert.equal(new Set(ids).size, ids.length, "no entity twice");
      assert.deepEqual([...ids].sort(), expected);
      for (const row of pages.flat()) assert.notEqual(row.n, 0);
      // Every entity, a page boundary falling exactly on data.keys' own.
      const all = await allPages({ type: "visit", where: { n: { exists: true } } }, 1000);
      assert.deepEqual(
        all.map((p) => p.length),
        [1000, 1000, 500],
      );
      assert.equal(new Set(all.flat().map((r) => r.id)).size, VISITS);
    });

    it("pages a sparse filter with small pages, in one order, next empty on the last", async () => {
      const expected = Array.from({ length: VISITS }, (_, i) => i).filter((i) => i % 7 === 3).length;
      const pages = await allPages({ type: "visit", where: { n: 3 } }, 50);
      const ids = pages.flat().map((r) => r.id);
      assert.equal(ids.length, expected);
      assert.equal(new Set(ids).size, expected);
      assert.deepEqual(
        pages.map((p) => p.length),
        [...Array(Math.floor(expected / 50)).fill(50), ...(expected % 50 === 0 ? [] : [expected % 50])],
      );
      // The same pages again: the order is data.keys', stable while the data is.
      const again = await allPages({ type: "visit", where: { n: 3 } }, 50);
      assert.deepEqual(
        again.flat().map((r) => r.id),
        ids,
      );
      // A limit ending exactly on the last match answers next "" with it.
      const exact = await allPages({ type: "site", where: { category: "shop" } }, 3);
      assert.deepEqual(
        exact.map((p) => p.length),
        [3],
      );
      const byOne = await allPages({ type: "site", where: { category: "shop" } }, 1);
      assert.deepEqual(
        byOne
          .flat()
          .map((r) => r.domain)
          .sort(),
        ["s03", "s04", "s08"],
      );
      assert.equal(byOne.length, 3);
    });

    it("refuses bad args, limits and pages naming them", async () => {
      await assert.rejects(
        get("matching", { type: "site" }),
        refused("BAD_REQUEST", /^computation "matching": args\.where: is required$/),
      );
      await assert.rejects(
        get("matching", { type: "site", where: {} }),
        refused("BAD_REQUEST", /^computation "matching": args\.where: give at least one condition$/),
      );
      await assert.rejects(
        get("matching", { type: "site", where: { category: { prefx: "s" } } }),
        refused(
          "BAD_REQUEST",
          /^computation "matching": args\.where\.category\.prefx: unknown key \(did you mean "prefix"\?\)/,
        ),
      );
      await assert.rejects(
        get("matching", { type: "site", where: { category: "shop" }, fields: ["visits", "colour"] }),
        refused("BAD_REQUEST", /^computation "matching": args\.fields\[1\]: type site has no field "colour"/),
      );
      await assert.rejects(
        get("matching", { type: "site", where: { category: "shop" }, as: "x" }),
        refused("BAD_REQUEST", /^computation "matching": args\.as: unknown key; expected one of type, where, fields$/),
      );
      for (const limit of [-1, 1001])
        await assert.rejects(
          get("matching", { type: "site", where: { category: "shop" } }, limit),
          refused("BAD_REQUEST", /^computation "matching": limit: expected an integer from 1 to 1000/),
        );
      const wrongShape = Buffer.from(JSON.stringify({ keys: "", at: 5000 })).toString("base64url");
      for (const page of ["not a token", "Zm9v", wrongShape])
        await assert.rejects(
          get("matching", { type: "site", where: { category: "shop" } }, 2, page),
          refused("BAD_REQUEST", /^computation "matching": page: .* is not a page token of this computation/),
        );
    });
  });

  describe("code-defined computations", () => {
    it("serves a module of the config tree beside the built-ins, calling them through ctx", async () => {
      const reply = await get("category_share", { category: "news" });
      assert.equal(reply.name, "category_share");
      assert.deepEqual(reply.rows, [{ category: "news", visits: 1120, share: 1120 / 2770 }]);
      await assert.rejects(
        get("category_share", { category: "News" }),
        refused("BAD_REQUEST", /^computation "category_share": args\.category: "News" is not a name/),
      );
      await assert.rejects(
        get("category_share", {}),
        refused("BAD_REQUEST", /^computation "category_share": args\.category: is required$/),
      );
    });

    it("lists it with the built-ins when a name is unknown", async () => {
      await assert.rejects(
        get("median", {}),
        refused(
          "NOT_FOUND",
          /unknown computation "median" \(registered: [a-z_, ]*top_n, stats, matching, category_share\)/,
        ),
      );
    });
  });
});
