// Names that arrive in a request body or a subject token (and names chosen in config) are looked
// up as own keys only: `constructor`, `__proto__`, `toString`, `valueOf` and `hasOwnProperty`
// are unknown names answered with NOT_FOUND listing the known ones, never Object.prototype members.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { deepMerge, setPath, type ComponentDoc } from "@machina/config";
import { compileAggregators } from "@machina/aggregate";
import { COMPUTATIONS, computationOf } from "@machina/compute";
import {
  compileTypeDef,
  countRecords,
  isField,
  keyValues,
  readRecords,
  RecordedDays,
  resolveType,
  storeOf,
  updateRecord,
  type DataContext,
} from "@machina/data";
import { compileSource, extractRecords, mergeRecords, renderRequest, splitPath } from "@machina/fetch";
import { compileLedgers, compileQuerySets, compileTriggers, ledgerOf, querySetOf, triggerOf } from "@machina/invoke";
import { codec, ProtoShapeError, protoKeyPath } from "@machina/protos";
import { meshNames } from "@machina/subjects";
import { decodeBody, isMachinaError, MachinaError, type ErrorCode } from "@machina/wire";
import { throwsShape } from "../support/throws-shape";

const PROTO_NAMES = ["constructor", "__proto__", "toString", "valueOf", "hasOwnProperty"];

/** Runs `fn` and returns the MachinaError of `code` it must throw. */
function fails(fn: () => unknown, code: ErrorCode, re?: RegExp): MachinaError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof MachinaError, `expected MachinaError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (re) assert.match(err.message, re);
    return err;
  }
  assert.fail(`expected ${code}`);
}

const doc = (name: string, d: Record<string, unknown>): ComponentDoc => ({
  name,
  origins: [`config/default/x/${name}.yaml`],
  doc: d,
});

describe("compute: computationOf", () => {
  it("answers NOT_FOUND listing the registered computations for every prototype name", () => {
    for (const name of PROTO_NAMES) {
      const err = fails(() => computationOf(name), "NOT_FOUND", /registered: latest, distinct/);
      assert.deepEqual(err.details, { name, known: [...COMPUTATIONS.keys()] });
      assert.equal(COMPUTATIONS.has(name), false);
    }
    assert.equal(typeof computationOf("latest").run, "function");
  });

  it("refuses an args.type that cannot be a subject token before any request", async () => {
    const deps = {} as Parameters<ReturnType<typeof computationOf>["run"]>[1];
    await assert.rejects(
      computationOf("latest").run({ type: "web site", key: { domain: "a" } }, deps),
      (e) => isMachinaError(e, "BAD_REQUEST") && /args\.type: "web site" is not a name/.test(e.message),
    );
  });
});

describe("aggregate: forType", () => {
  const table = compileAggregators([doc("website", { aggregator: "passthrough" }), doc("constructor", {})]);

  it("answers NOT_FOUND listing the declared types for an undeclared or prototype name", () => {
    for (const name of [...PROTO_NAMES.filter((n) => n !== "constructor"), "company"]) {
      const err = fails(() => table.forType(name), "NOT_FOUND", /declared: constructor, website/);
      assert.equal(err.retryable, false, "a dead letter, not a retry, in the pipeline");
    }
  });

  it("serves a type declared under a prototype name like any other", () => {
    assert.equal(table.forType("constructor").kind, "passthrough");
    assert.deepEqual(
      [...table.kinds()],
      [
        ["website", "passthrough"],
        ["constructor", "passthrough"],
      ],
    );
  });
});

describe("fetch: sources, templates and extraction", () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests reshape the raw file freely
  const source = (queries: Record<string, any>, extra: Record<string, unknown> = {}) => ({
    name: "s",
    limiter: "unlimited",
    manager: { type: "http", base_url: "http://127.0.0.1:1" },
    queries,
    ...extra,
  });
  const q = (path = "/x", more: Record<string, unknown> = {}) => ({
    path,
    extract: { all: { type: "thing", path: "." } },
    ...more,
  });

  it("compiles queries named like prototype properties and finds only declared ones", () => {
    // The name rule leaves `constructor` as the one prototype property a name can spell.
    const def = compileSource(source({ constructor: q("/constructor"), site: q() }), "s.yaml");
    assert.deepEqual([...def.queries.keys()], ["constructor", "site"]);
    assert.equal(def.queries.get("constructor")?.path.source, "/constructor");
    fails(
      () => compileSource(source({ toString: q() }), "s.yaml"),
      "BAD_REQUEST",
      /queries\.toString: "toString" is not a name: .*\(write "tostring"\)/,
    );
    const only = compileSource(source({ site: q() }), "s.yaml");
    for (const n of PROTO_NAMES) assert.equal(only.queries.has(n), false, n);
  });

  it("refuses `__proto__` as a query, data, header, param or extract name, naming the path", () => {
    const cases: Array<[unknown, RegExp]> = [
      [
        JSON.parse(
          '{"name":"s","limiter":"unlimited","manager":{"type":"http","base_url":"http://h"},"queries":{"__proto__":{"path":"/x","extract":{"a":{"type":"t","path":"."}}}}}',
        ),
        /queries\.__proto__: this name is reserved/,
      ],
      [
        source({ site: q() }, { data: JSON.parse('{"__proto__":{"value":"x"}}') }),
        /data\.__proto__: this name is reserved/,
      ],
      [
        source({ site: q("/x", { headers: JSON.parse('{"__proto__":"x"}') }) }),
        /queries\.site\.headers\.__proto__: this name is reserved/,
      ],
      [
        source({ site: q("/x", { params: JSON.parse('{"__proto__":"x"}') }) }),
        /queries\.site\.params\.__proto__: this name is reserved/,
      ],
      [
        source({ site: q("/x", { extract: JSON.parse('{"__proto__":{"type":"t","path":"."}}') }) }),
        /queries\.site\.extract\.__proto__: this name is reserved/,
      ],
      [
        source({ site: q("/x", { extract: { a: { type: "__proto__", path: "." } } }) }),
        /queries\.site\.extract\.a\.type: "__proto__" is not a name/,
      ],
    ];
    for (const [raw, re] of cases) fails(() => compileSource(raw, "s.yaml"), "BAD_REQUEST", re);
  });

  it("checks {{data.x}} and paginate params against own keys", () => {
    fails(
      () => compileSource(source({ site: q("/{{data.toString}}") }), "s.yaml"),
      "BAD_REQUEST",
      /\{\{data\.toString\}\} is not declared under data/,
    );
    const def = compileSource(
      source({ site: q("/x", { paginate: { type: "page", param: "constructor" } }) }),
      "s.yaml",
    );
    const paginate = def.queries.get("site")?.paginate;
    assert.equal(paginate?.type === "page" ? paginate.param : undefined, "constructor");
  });

  it("treats a lead field named like a prototype property as missing unless the lead has it", () => {
    const def = compileSource(
      source({ site: q("/v/{{lead.constructor}}", { params: { t: "{{lead.toString}}" } }) }),
      "s.yaml",
    );
    const query = def.queries.get("site")!;
    const ctx = (args: Record<string, unknown>) => ({ source: "s", query: "site", lead: { id: "l1", args }, data: {} });
    fails(() => renderRequest(query, ctx({ toString: "t" })), "BAD_REQUEST", /needs lead field "constructor"/);
    fails(() => renderRequest(query, ctx({ constructor: "c" })), "BAD_REQUEST", /needs lead field "toString"/);
    const req = renderRequest(query, ctx({ constructor: "c", toString: "t" }));
    assert.equal(req.path, "/v/c");
    assert.deepEqual(req.params, { t: "t" });
  });

  it("groups records of a type named like a prototype property and refuses upstream `__proto__` keys", () => {
    const spec = (type: string) => ({ name: "all", type, path: splitPath("items") });
    const out = extractRecords({ items: [{ a: 1 }] }, [spec("constructor"), spec("toString")], "s", "q");
    assert.deepEqual(out, { constructor: [{ a: 1 }], toString: [{ a: 1 }] });
    assert.deepEqual(mergeRecords({}, out), { constructor: [{ a: 1 }], toString: [{ a: 1 }] });
    const err = fails(
      () => extractRecords(JSON.parse('{"items":[{"a":1},{"b":{"__proto__":{"x":1}}}]}'), [spec("t")], "s", "q"),
      "UPSTREAM",
      /record 1 has a "__proto__" key \(at b\.__proto__\)/,
    );
    assert.equal(err.retryable, false);
  });
});

describe("invoke: triggers, query sets and ledgers", () => {
  const ledgers = compileLedgers([doc("websites", { lead_id: "domain", leads: [{ domain: "a" }] })]);
  const querySets = compileQuerySets(
    [doc("websites_sitestats", { source: "sitestats", queries: ["site"], ledger: "websites" })],
    ledgers,
  );
  const triggers = compileTriggers([doc("refresh", { duration: "1m", query_sets: ["websites_sitestats"] })], querySets);

  it("answers NOT_FOUND listing the known names for every prototype name", () => {
    for (const name of PROTO_NAMES) {
      fails(() => triggerOf(triggers, name), "NOT_FOUND", /known: refresh/);
      fails(() => querySetOf(querySets, name), "NOT_FOUND", /known: websites_sitestats/);
      fails(() => ledgerOf(ledgers, name), "NOT_FOUND", /known: websites/);
    }
  });

  it("reads a lead's id field as an own key", () => {
    // A lead without its own `constructor` field is left out, not given Object.prototype.constructor.
    const missing = ledgerOf(compileLedgers([doc("l", { lead_id: "constructor", leads: [{ domain: "a" }] })]), "l");
    assert.equal(missing.store.size, 0);
    assert.deepEqual(missing.rejected, [{ id: "leads[0]", error: 'missing its id field "constructor"' }]);
    const l = compileLedgers([doc("l", { lead_id: "constructor", leads: [{ constructor: "c1" }] })]);
    assert.deepEqual(ledgerOf(l, "l").store.ids(), ["c1"]);
  });
});

describe("data: stores, types and fields", () => {
  const names = meshNames();
  const website = compileTypeDef(
    { name: "website", key: ["domain"], fields: { domain: "text", title: "text" } },
    "website.yaml",
  );
  // Every check below runs before the first statement, so the client is never reached.
  const ctx: DataContext = {
    client: undefined as never,
    queue: undefined as never,
    keyspace: "k",
    types: new Map([["website", website]]),
    concurrency: 1,
    lookbackDays: 1,
    recordedDays: new RecordedDays(),
    indexSince: new Map(),
    legacyDump: new Set(),
    driftWritten: new Map(),
    clock: Date.now,
    cursorsKnown: new Set(),
    legacyDirty: false,
    clean: { merged: new Map(), attempts: new Map(), legacyDrained: new Set() },
    manualSeen: new Map(),
  };

  it("answers NOT_FOUND listing dump and clean for an unknown store token", () => {
    for (const name of [...PROTO_NAMES, "raw"]) {
      const err = fails(
        () => storeOf(names, `machina.data.count.${name}.website`),
        "NOT_FOUND",
        /known stores: dump .*clean/,
      );
      assert.deepEqual(err.details, { store: name, known: ["dump", "clean"] });
    }
    assert.deepEqual(storeOf(names, "machina.data.count.clean.website"), { store: "clean", type: "website" });
  });

  it("answers NOT_FOUND listing the registered types for an unknown type token", () => {
    for (const name of PROTO_NAMES) fails(() => resolveType(ctx, name), "NOT_FOUND", /known: website/);
  });

  it("treats prototype names in criteria and alterations as unknown fields", async () => {
    for (const name of ["constructor", "toString", "valueOf", "hasOwnProperty"]) {
      assert.equal(isField(website, name), false);
      await assert.rejects(
        readRecords(ctx, "dump", "website", { criteria: { domain: "a", [name]: "x" } }),
        (e) => isMachinaError(e, "BAD_REQUEST") && e.message.includes(`cannot filter dump rows on "${name}"`),
      );
      await assert.rejects(
        countRecords(ctx, "clean", "website", { domain: "a", [name]: "x" }),
        (e) => isMachinaError(e, "BAD_REQUEST") && e.message.includes(`"${name}"`),
      );
      await assert.rejects(
        updateRecord(ctx, "clean", "website", { domain: "a" }, { [name]: "x" }),
        (e) => isMachinaError(e, "BAD_REQUEST") && e.message.includes(`"${name}" is not a field (fields: title)`),
      );
    }
  });

  it("reads key fields as own keys, so a missing `constructor` key is missing", () => {
    const odd = compileTypeDef(
      { name: "odd", key: ["constructor"], fields: { constructor: "text", value: "int" } },
      "odd.yaml",
    );
    fails(() => keyValues(odd, {}), "BAD_REQUEST", /key field "constructor" is missing/);
    assert.deepEqual(keyValues(odd, { constructor: "c" }), { constructor: "c" });
  });

  it("refuses merge policies and keys that name undeclared prototype properties", () => {
    const base = { name: "t", key: ["id"], fields: { id: "text", n: "int" } };
    fails(
      () => compileTypeDef({ ...base, merge: { toString: "max" } }, "t.yaml"),
      "BAD_REQUEST",
      /merge\.toString: "toString" is not declared in fields/,
    );
    fails(
      () => compileTypeDef({ ...base, key: ["valueOf"] }, "t.yaml"),
      "BAD_REQUEST",
      /key\[0\]: "valueOf" is not declared in fields/,
    );
  });
});

describe("protos: JSON keys that name prototype properties", () => {
  it("refuses a `__proto__` key inside Struct data at any depth, naming the path", () => {
    const cases: Array<[string, string]> = [
      ['{"id":"a","args":{"__proto__":{"domain":"evil"}}}', "args.__proto__"],
      ['{"id":"a","args":{"x":{"y":[1,{"__proto__":1}]}}}', "args.x.y[1].__proto__"],
    ];
    for (const [text, path] of cases)
      throwsShape(() => codec("Lead").fromJson(JSON.parse(text)), path, /the key "__proto__" is not allowed/);
    throwsShape(
      () => codec("PatchOp").fromJson(JSON.parse('{"op":"add","path":"/a","value":{"__proto__":{}}}')),
      "value.__proto__",
      /not allowed/,
    );
    throwsShape(
      () => codec("CreateRequest").fromJson(JSON.parse('{"records":[{"__proto__":{}}]}')),
      "records[0].__proto__",
      /not allowed/,
    );
  });

  it("refuses a `__proto__` map key, naming the path", () => {
    throwsShape(
      () => codec("EntitySet").fromJson(JSON.parse('{"types":{"__proto__":{"records":[]}}}')),
      "types.__proto__",
      /not allowed/,
    );
  });

  it("keeps other prototype names as ordinary own keys of Struct data and maps, prototypes untouched", () => {
    const lead = codec("Lead").fromJson(
      JSON.parse('{"id":"a","args":{"constructor":1,"toString":"t","nested":{"valueOf":true}}}'),
    );
    assert.deepEqual(lead.args, { constructor: 1, toString: "t", nested: { valueOf: true } });
    assert.equal(Object.getPrototypeOf(lead.args), Object.prototype);
    const back = codec("Lead").decode(codec("Lead").encode(lead));
    assert.deepEqual(back.args, lead.args);
    const set = codec("EntitySet").fromJson(JSON.parse('{"types":{"constructor":{"records":[{"a":1}]}}}'));
    assert.deepEqual(Object.keys(set.types), ["constructor"]);
    assert.equal(Object.getPrototypeOf(set.types), Object.prototype);
  });

  it("refuses a binary Struct that carries a `__proto__` entry as malformed", () => {
    // Lead{args: Struct{fields: {"__proto__": Value{string_value: "x"}}}}, written by hand since our encoder refuses it.
    const key = [...Buffer.from("__proto__")];
    const value = [0x1a, 1, 0x78];
    const entry = [0x0a, key.length, ...key, 0x12, value.length, ...value];
    const struct = [0x0a, entry.length, ...entry];
    const bytes = Uint8Array.from([0x12, struct.length, ...struct]);
    assert.throws(
      () => codec("Lead").decode(bytes),
      (e) => e instanceof ProtoShapeError && /malformed protobuf.*__proto__/.test(e.message),
    );
  });

  it("answers BAD_REQUEST naming the field through the wire decoder, for message and Struct keys", () => {
    for (const key of PROTO_NAMES) {
      const err = fails(
        () => decodeBody("QueryRequest", new TextEncoder().encode(`{"${key}":{}}`), "json"),
        "BAD_REQUEST",
        /unknown field/,
      );
      assert.equal(err.details.field, key);
    }
    const err = fails(
      () => decodeBody("QueryRequest", new TextEncoder().encode('{"lead":{"id":"a","args":{"__proto__":{}}}}'), "json"),
      "BAD_REQUEST",
    );
    assert.equal(err.details.field, "lead.args.__proto__");
    assert.equal(({} as Record<string, unknown>).domain, undefined, "Object.prototype untouched");
  });

  it("finds the path of a `__proto__` key, or null", () => {
    assert.equal(protoKeyPath({ a: [{ b: 1 }] }), null);
    assert.equal(protoKeyPath(JSON.parse('{"a":[{"b":1},{"__proto__":1}]}'), "root"), "root.a[1].__proto__");
    assert.equal(protoKeyPath(JSON.parse('[{"__proto__":1}]')), "[0].__proto__");
  });
});

describe("config: merging and env paths", () => {
  it("keeps a `__proto__` key as a key when merging, without touching prototypes", () => {
    const base = JSON.parse('{"queries":{"__proto__":{"path":"/a"},"x":1}}') as Record<string, unknown>;
    const over = JSON.parse('{"queries":{"__proto__":{"method":"GET"}}}') as Record<string, unknown>;
    const merged = deepMerge(base, over) as { queries: Record<string, unknown> };
    assert.ok(Object.hasOwn(merged.queries, "__proto__"));
    assert.deepEqual(Object.getOwnPropertyDescriptor(merged.queries, "__proto__")?.value, {
      path: "/a",
      method: "GET",
    });
    assert.equal(Object.getPrototypeOf(merged.queries), Object.prototype);
  });

  it("never writes through `__proto__` into Object.prototype", () => {
    const o: Record<string, unknown> = {};
    setPath(o, "__proto__.polluted", 1);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.deepEqual(Object.getOwnPropertyDescriptor(o, "__proto__")?.value, { polluted: 1 });
  });
});
