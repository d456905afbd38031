// The shipped example network (config/default) is valid and consistent across services: every
// component compiles, query sets name real sources and queries, extracted types are declared
// data types with aggregators; plus the small validators of aggregate, compute and data.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { loadComponents } from "@machina/config";
import { compileSource } from "@machina/fetch";
import { compileLedgers, compileQuerySets, compileTriggers } from "@machina/invoke";
import { compileAggregators } from "@machina/aggregate";
import { compileTypeDef, parseReplication } from "@machina/data";
import { computationOf } from "@machina/compute";
import { NAME_RULE } from "@machina/subjects";
import { isMachinaError } from "@machina/wire";

const load = (kind: string) => loadComponents(kind, { env: {} });

describe("example network in config/default", () => {
  const sources = load("fetch/sources").map((c) => compileSource({ name: c.name, ...c.doc }, c.origins.join(" + ")));
  const ledgers = compileLedgers(load("invoke/ledgers"));
  const querySets = compileQuerySets(load("invoke/query_sets"), ledgers);
  const triggers = compileTriggers(load("invoke/triggers"), querySets);
  const types = load("data/types").map((c) => compileTypeDef({ name: c.name, ...c.doc }, c.origins.join(" + ")));
  const aggregators = compileAggregators(load("aggregate/aggregators"), load("data/types"));

  it("declares sources, ledgers, query sets, a trigger and a type", () => {
    assert.deepEqual(sources.map((s) => s.name).sort(), ["directory", "rankings", "sitestats", "traffic"]);
    assert.ok(ledgers.get("websites")!.store.size >= 3);
    assert.deepEqual(triggers.get("refresh")?.querySets, ["websites_sitestats", "websites_traffic"]);
    assert.deepEqual([...querySets.keys()].sort(), [
      "business_websites_sitestats",
      "categories_changes",
      "cities_directory",
      "watchlist_traffic",
      "websites_sitestats",
      "websites_traffic",
    ]);
    // The recursive loop: cities → businesses → a self ledger of their websites → sitestats.
    assert.deepEqual(triggers.get("directory")?.querySets, ["cities_directory"]);
    assert.deepEqual(triggers.get("discover")?.querySets, ["business_websites_sitestats"]);
    const found = ledgers.get("business_websites")!;
    assert.equal(found.source, "self");
    assert.equal(found.refresh, "discover");
    assert.equal(found.from?.computation, "distinct");
    assert.equal(querySets.get("business_websites_sitestats")?.ledger, "business_websites");
    assert.equal(ledgers.get("watchlist")?.source, "kv");
    assert.deepEqual([triggers.get("watch")?.type, triggers.get("watch")?.timezone], ["cron", "America/New_York"]);
    // Incremental: each category's changes since its own cursor, every minute and at start.
    assert.deepEqual(triggers.get("changes")?.querySets, ["categories_changes"]);
    assert.deepEqual(querySets.get("categories_changes")?.queries, ["changes"]);
    assert.deepEqual(types.map((t) => t.name).sort(), ["business", "vertex_sample", "website"]);
  });

  it("lists businesses by city: directory.businesses takes the lead's city and yields business records keyed by id", () => {
    const directory = sources.find((s) => s.name === "directory")!;
    assert.deepEqual([...directory.queries.keys()], ["businesses"]);
    assert.deepEqual(
      directory.queries.get("businesses")!.extract.map((e) => e.type),
      ["business"],
    );
    const business = types.find((t) => t.name === "business")!;
    assert.deepEqual(business.key, ["id"]);
    assert.deepEqual(Object.keys(business.fields).sort(), ["city", "domain", "id", "name"]);
    assert.equal(aggregators.forType("business").kind, "passthrough");
  });

  it("query sets name sources and queries that exist", () => {
    for (const qs of querySets.values()) {
      const src = sources.find((s) => s.name === qs.source);
      assert.ok(src, `query set ${qs.name}: unknown source ${qs.source}`);
      for (const q of qs.queries) assert.ok(src.queries.has(q), `query set ${qs.name}: ${qs.source} has no query ${q}`);
    }
  });

  it("every extracted type is a declared data type with an aggregator, keyed by a field the leads supply", () => {
    const typeNames = new Set(types.map((t) => t.name));
    for (const s of sources) {
      for (const q of s.queries.values()) {
        for (const e of q.extract) {
          assert.ok(typeNames.has(e.type), `${s.name}.${q.name} extracts undeclared type ${e.type}`);
          assert.ok(aggregators.kinds().has(e.type), `no aggregator declared for ${e.type}`);
        }
      }
    }
    const website = types.find((t) => t.name === "website")!;
    for (const lead of ledgers.get("websites")!.store.after(null)) {
      for (const k of website.key) assert.ok(lead.args[k] !== undefined, `lead ${lead.id} lacks key field ${k}`);
    }
  });

  it("source priorities name real sources", () => {
    for (const t of types) {
      for (const [field, m] of Object.entries(t.merge)) {
        if (m.policy !== "source_priority") continue;
        for (const src of m.sources)
          assert.ok(
            sources.some((s) => s.name === src),
            `${t.name}.${field}: unknown source ${src}`,
          );
      }
    }
  });

  it("keeps API keys out of config: every credential comes from env or a file", () => {
    for (const s of sources) {
      for (const [name, spec] of Object.entries(s.data)) {
        if (/key|token|secret|password/i.test(name))
          assert.notEqual(spec.kind, "value", `${s.name}.data.${name} must not be a constant`);
      }
    }
  });
});

describe("aggregate, compute and data validators", () => {
  it("refuses an unknown aggregator kind or key, naming the file", () => {
    const bad = (doc: Record<string, unknown>) => () =>
      compileAggregators([{ name: "website", origins: ["aggregators/website.yaml"], doc }]);
    assert.throws(
      bad({ aggregator: "avg" }),
      (e) =>
        isMachinaError(e, "BAD_REQUEST") &&
        /website\.yaml: aggregator: expected one of passthrough, forward_fill, window, merge_partials, got "avg"/.test(
          e.message,
        ),
    );
    assert.throws(
      bad({ aggregatr: "passthrough" }),
      (e) =>
        isMachinaError(e, "BAD_REQUEST") &&
        /aggregatr: unknown key \(did you mean "aggregator"\?\); expected one of aggregator$/.test(e.message),
    );
  });

  it("defaults to passthrough and names aggregators after entity types under the name rule", () => {
    assert.deepEqual(
      [...compileAggregators([{ name: "website", origins: ["website.yaml"], doc: {} }]).kinds()],
      [["website", "passthrough"]],
    );
    assert.throws(
      () => compileAggregators([{ name: "Web-Site", origins: ["aggregators/Web-Site.yaml"], doc: {} }]),
      (e) =>
        isMachinaError(e, "BAD_REQUEST") &&
        /^aggregators\/Web-Site\.yaml: the file name is the component's name: "Web-Site" is not a name: .*\(write "web_site"\)$/.test(
          e.message,
        ),
    );
  });

  it("declares passthrough for a type whose file says so", () => {
    const table = compileAggregators([{ name: "website", origins: ["a.yaml"], doc: { aggregator: "passthrough" } }]);
    assert.equal(table.forType("website").kind, "passthrough");
    assert.deepEqual(table.stateful(), []);
  });

  it("names the registered computations for an unknown one and the missing argument for latest", async () => {
    assert.throws(
      () => computationOf("median"),
      (e) => isMachinaError(e, "NOT_FOUND") && /registered: latest, distinct/.test(e.message),
    );
    // Argument checks run before any I/O, so no client is needed to see them fail.
    const deps = {} as Parameters<ReturnType<typeof computationOf>["run"]>[1];
    await assert.rejects(
      computationOf("latest").run({ key: { domain: "a" } }, deps),
      (e) => isMachinaError(e, "BAD_REQUEST") && /args\.type/.test(e.message),
    );
    await assert.rejects(
      computationOf("latest").run({ type: "website" }, deps),
      (e) => isMachinaError(e, "BAD_REQUEST") && /args\.key/.test(e.message),
    );
  });

  it("checks computation args with the component wording: required, name rule, unknown-key hints, `__proto__`", async () => {
    const deps = {} as Parameters<ReturnType<typeof computationOf>["run"]>[1];
    const latest = computationOf("latest");
    const refuses = (args: Record<string, unknown>, message: string) =>
      assert.rejects(latest.run(args as never, deps), (e) => isMachinaError(e, "BAD_REQUEST") && e.message === message);
    await refuses({ key: { domain: "a" } }, 'computation "latest": args.type: is required');
    await refuses(
      { type: "Website", key: { domain: "a" } },
      `computation "latest": args.type: "Website" is not a name: use ${NAME_RULE} (write "website")`,
    );
    await refuses(
      { type: "website", key: { domain: "a" }, keys: {} },
      'computation "latest": args.keys: unknown key (did you mean "key"?); expected one of type, key',
    );
    await refuses(
      { type: "website", key: "example.com" },
      'computation "latest": args.key: expected a mapping, got "example.com"',
    );
    await refuses(
      JSON.parse('{"type":"website","key":{"__proto__":{"domain":"a"}}}') as Record<string, unknown>,
      'computation "latest": args.key.__proto__: this name is reserved (it is the prototype of JavaScript objects); choose another',
    );
    // The args schema is exported with each computation, for docs and clients.
    assert.equal(latest.args.safeParse({ type: "website", key: { domain: "a" } }).success, true);
  });

  it("checks distinct's args, limit and page before any request", async () => {
    const deps = {} as Parameters<ReturnType<typeof computationOf>["run"]>[1];
    const distinct = computationOf("distinct");
    const args = { type: "business", field: "domain" };
    const refuses = (a: Record<string, unknown>, paging: { limit: number; page: string }, message: RegExp) =>
      assert.rejects(
        distinct.run(a as never, deps, paging),
        (e) => isMachinaError(e, "BAD_REQUEST") && message.test(e.message),
      );
    await refuses({ type: "business" }, { limit: 0, page: "" }, /^computation "distinct": args\.field: is required$/);
    await refuses({ ...args, wher: {} }, { limit: 0, page: "" }, /args\.wher: unknown key \(did you mean "where"\?\)/);
    await refuses(
      { ...args, where: { city: [1] } },
      { limit: 0, page: "" },
      /^computation "distinct": args\.where\.city: /,
    );
    for (const limit of [-1, 1001])
      await refuses(args, { limit, page: "" }, /^computation "distinct": limit: expected an integer from 1 to 1000/);
    for (const page of ["%%%", "bm90IGpzb24", Buffer.from("null").toString("base64url"), "A"])
      await refuses(args, { limit: 2, page }, /^computation "distinct": page: .* is not a page token/);
  });

  it("parses replication factors per datacenter", () => {
    assert.deepEqual(parseReplication("datacenter1:1"), { datacenter1: 1 });
    assert.deepEqual(parseReplication("dc1:3, dc2:2"), { dc1: 3, dc2: 2 });
    for (const bad of ["", "dc1", "dc1:0", "dc1:x", "a b:1"]) {
      assert.throws(
        () => parseReplication(bad),
        (e) => isMachinaError(e, "BAD_REQUEST") && /cassandra\.replication/.test(e.message),
        bad,
      );
    }
  });
});
