// The `distinct` ledger producer against the real services: data (real Cassandra) and compute
// in-process on one prefix, clean records created through data.create.clean. Distinct non-empty
// values in JSON-text order, where filters, paging (every value once, in order, across pages and
// across data.keys pages), and the BAD_REQUESTs naming limit, page and args.<field>.
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

const prefix = uniquePrefix("distinct");
const keyspace = `${prefix.replace(/[^a-z0-9_]/g, "_")}_ks`;

const businessType = `key: [id]
fields: { id: text, name: text, city: text, domain: text, employees: int }
merge: { default: latest_non_null }
clean_window: 1h
`;

const visitType = `key: [id]
fields: { id: text, n: int }
merge: { default: latest_non_null }
clean_window: 1h
`;

// Two businesses share acme.example across cities, two dental.example in one; one has an empty
// domain and one none, which distinct leaves out.
const BUSINESSES: JsonObject[] = [
  { id: "b01", name: "Acme", city: "springfield", domain: "acme.example", employees: 9 },
  { id: "b02", name: "Blue", city: "springfield", domain: "blue.example", employees: 10 },
  { id: "b03", name: "Dental N", city: "springfield", domain: "dental.example", employees: 100 },
  { id: "b04", name: "Dental S", city: "springfield", domain: "dental.example", employees: 9 },
  { id: "b05", name: "Acme R", city: "riverton", domain: "acme.example", employees: 10 },
  { id: "b06", name: "River", city: "riverton", domain: "river.example" },
  { id: "b07", name: "Blue L", city: "lakeside", domain: "blue.example" },
  { id: "b08", name: "Nameless", city: "lakeside", domain: "" },
  { id: "b09", name: "Offline", city: "lakeside" },
  { id: "b10", name: "Pine", city: "lakeside", domain: "pine.example" },
];
const DOMAINS = ["acme.example", "blue.example", "dental.example", "pine.example", "river.example"];

// More entities than one data.keys page of the scan (1000), with seven distinct values.
const VISITS = 2500;

describe("compute: distinct", () => {
  let data: RunningService<DataConfig>;
  let compute: RunningService<ComputeConfig>;
  let nc: NatsConnection;
  let client: MeshClient;
  let admin: cassandra.Client;

  before(async () => {
    const { client: c, localDataCenter } = await adminCqlClient();
    admin = c;
    const configDir = writeConfig({
      "data/types/business.yaml": businessType,
      "data/types/visit.yaml": visitType,
    });
    const env = dataServiceEnv(NATS_URL, prefix, keyspace, localDataCenter);
    data = await startService(dataService, { handleSignals: false, configDir, env });
    compute = await startService(computeService, { handleSignals: false, configDir, env });
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    client = new MeshClient(nc);
    const names = data.ctx.names;
    await client.request(
      names.data("create", "clean", "business"),
      "CreateRequest",
      { records: BUSINESSES },
      "WriteReply",
    );
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

  const distinct = (args: Record<string, unknown>, limit = 0, page = ""): Promise<ComputeReply> =>
    client.request(
      compute.ctx.names.computeGet("distinct"),
      "ComputeRequest",
      { args: args as JsonObject, limit, page },
      "ComputeReply",
      { timeoutMs: 30_000 },
    );

  // Every page of a distinct, following next until "".
  async function allPages(args: Record<string, unknown>, limit: number): Promise<JsonObject[][]> {
    const pages: JsonObject[][] = [];
    let page = "";
    do {
      const reply = await distinct(args, limit, page);
      assert.equal(reply.name, "distinct");
      assert.ok(reply.rows.length <= limit, `a page holds at most ${limit} rows`);
      pages.push(reply.rows);
      page = reply.next;
      assert.ok(pages.length <= 100, "paging does not terminate");
    } while (page !== "");
    return pages;
  }

  const refused = (code: "BAD_REQUEST" | "NOT_FOUND", message: RegExp) => (err: unknown) => {
    assert.ok(isMachinaError(err, code), String(err));
    assert.match((err as Error).message, message);
    return true;
  };

  it("lists every distinct non-empty value once, sorted, under the field's name", async () => {
    const reply = await distinct({ type: "business", field: "domain" });
    assert.deepEqual(
      reply.rows,
      DOMAINS.map((domain) => ({ domain })),
    );
    assert.equal(reply.next, "");
    assert.equal(reply.cached, false);
  });

  it("keeps the records matching every where filter, and puts the values under `as`", async () => {
    const springfield = await distinct({
      type: "business",
      field: "domain",
      as: "site",
      where: { city: "springfield" },
    });
    assert.deepEqual(springfield.rows, [
      { site: "acme.example" },
      { site: "blue.example" },
      { site: "dental.example" },
    ]);
    const both = await distinct({ type: "business", field: "domain", where: { city: "riverton", employees: 10 } });
    assert.deepEqual(both.rows, [{ domain: "acme.example" }]);
    const none = await distinct({ type: "business", field: "domain", where: { city: "nowhere" } });
    assert.deepEqual(none, { name: "distinct", rows: [], cached: false, next: "" });
  });

  it("orders numbers by their JSON text", async () => {
    const reply = await distinct({ type: "business", field: "employees", as: "size" });
    assert.deepEqual(reply.rows, [{ size: 10 }, { size: 100 }, { size: 9 }]);
  });

  it("pages with limit 2: every value exactly once, in order, next empty on the last page", async () => {
    const pages = await allPages({ type: "business", field: "domain" }, 2);
    assert.deepEqual(
      pages.map((p) => p.map((r) => r.domain)),
      [DOMAINS.slice(0, 2), DOMAINS.slice(2, 4), DOMAINS.slice(4)],
    );
    // A limit that ends exactly on the last value answers next "" with it.
    const exact = await allPages({ type: "business", field: "domain" }, 5);
    assert.equal(exact.length, 1);
    assert.equal(exact[0].length, 5);
  });

  it("scans types larger than one page of keys, holding only the values", async () => {
    const all = await distinct({ type: "visit", field: "n" });
    assert.deepEqual(
      all.rows,
      [0, 1, 2, 3, 4, 5, 6].map((n) => ({ n })),
    );
    const pages = await allPages({ type: "visit", field: "n" }, 2);
    assert.deepEqual(
      pages.map((p) => p.map((r) => r.n)),
      [[0, 1], [2, 3], [4, 5], [6]],
    );
    const filtered = await distinct({ type: "visit", field: "id", where: { n: 3 } }, 1000);
    assert.equal(filtered.rows.length, Math.ceil((VISITS - 3) / 7));
  });

  it("refuses a limit out of 1..1000 naming limit, and a page it did not make naming page", async () => {
    const args = { type: "business", field: "domain" };
    for (const limit of [-1, 1001])
      await assert.rejects(
        distinct(args, limit),
        refused("BAD_REQUEST", /^computation "distinct": limit: expected an integer from 1 to 1000/),
      );
    for (const page of ["not a token", "Zm9v", "x"])
      await assert.rejects(
        distinct(args, 2, page),
        refused("BAD_REQUEST", /^computation "distinct": page: .* is not a page token of this computation/),
      );
  });

  it("refuses unknown args and fields naming args.<field>", async () => {
    await assert.rejects(
      distinct({ type: "business", field: "domain", colour: "red" }),
      refused(
        "BAD_REQUEST",
        /^computation "distinct": args\.colour: unknown key; expected one of type, field, as, where$/,
      ),
    );
    await assert.rejects(distinct({ type: "business" }), refused("BAD_REQUEST", /args\.field: is required/));
    await assert.rejects(
      distinct({ type: "business", field: "domian" }),
      refused(
        "BAD_REQUEST",
        /^computation "distinct": args\.field: type business has no field "domian" \(did you mean "domain"\?\)/,
      ),
    );
    await assert.rejects(
      distinct({ type: "business", field: "domain", where: { town: "x" } }),
      refused("BAD_REQUEST", /args\.where\.town: type business has no field "town"/),
    );
    await assert.rejects(distinct({ type: "nosuch", field: "domain" }), refused("NOT_FOUND", /nosuch/));
  });

  it("leaves latest working and answers NOT_FOUND listing both for an unknown computation", async () => {
    const latest = await client.request(
      compute.ctx.names.computeGet("latest"),
      "ComputeRequest",
      { args: { type: "business", key: { id: "b03" } } },
      "ComputeReply",
    );
    assert.equal(latest.rows[0].domain, "dental.example");
    assert.equal(latest.next, "");
    await assert.rejects(
      client.request(compute.ctx.names.computeGet("median"), "ComputeRequest", { args: {} }, "ComputeReply"),
      refused("NOT_FOUND", /unknown computation "median" \(registered: latest, distinct, [a-z_, ]+\)/),
    );
  });
});
