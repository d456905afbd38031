// Covers @machina/protos: codec round trips (binary and JSON), strict shape errors, and .proto ↔ types.ts agreement.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { codec, decodeGeneral, encodeGeneral, messageNames } from "@machina/protos";
import type { JsonObject, MessageName, MessageTypes, QueryRequest, QueryResponse } from "@machina/protos";
import { throwsShape } from "../support/throws-shape";
import { makeMeta } from "@machina/wire";

const nestedArgs: JsonObject = {
  domain: "example.com",
  depth: 3,
  ratio: -0.25,
  enabled: true,
  disabled: false,
  nothing: null,
  tags: ["a", 1, true, null, { deep: ["x", { deeper: 2.5 }] }],
  empty: {},
  emptyList: [],
  nested: { a: { b: { c: "d" } }, list: [[1, 2], [3]] },
};

describe("codec round trips", () => {
  it("round-trips a QueryRequest with nested Struct args through binary", () => {
    const c = codec("QueryRequest");
    const req: QueryRequest = {
      source: "sitestats",
      query: "site",
      lead: { id: "example.com", args: nestedArgs },
      requestId: "r-1",
    };
    const bytes = c.encode(req);
    assert.ok(bytes instanceof Uint8Array && bytes.length > 0);
    assert.deepEqual(c.decode(bytes), req);
  });

  it("round-trips a QueryRequest through toJson → JSON text → fromJson", () => {
    const c = codec("QueryRequest");
    const req: QueryRequest = { source: "s", query: "q", lead: { id: "1", args: nestedArgs }, requestId: "r" };
    const text = JSON.stringify(c.toJson(req));
    // Struct args are plain JSON on the wire, not protobuf's {fields: {k: {stringValue}}} shape.
    assert.deepEqual(JSON.parse(text).lead.args, nestedArgs);
    assert.deepEqual(c.fromJson(JSON.parse(text)), req);
  });

  it("keeps JSON null inside Struct args but treats a top-level null field as the default", () => {
    const c = codec("QueryRequest");
    const out = c.fromJson({ source: null, lead: { id: "x", args: { a: null, b: [null] } } });
    assert.equal(out.source, "");
    assert.deepEqual(out.lead.args, { a: null, b: [null] });
    assert.deepEqual(c.decode(c.encode(out)).lead.args, { a: null, b: [null] });
  });

  it("fills every default when fields are absent", () => {
    const req = codec("QueryRequest").fromJson({});
    assert.equal(req.source, "");
    assert.equal(req.requestId, "");
    const meta = codec("Meta").decode(new Uint8Array());
    assert.equal(meta.start, 0);
    assert.equal(meta.attempts, 0);
    assert.equal(meta.source, "");
  });

  it("round-trips a QueryResponse whose EntitySet maps types to Records", () => {
    const c = codec("QueryResponse");
    const resp: QueryResponse = {
      requestId: "r-9",
      source: "sitestats",
      query: "site",
      lead: { id: "example.com", args: { domain: "example.com" } },
      data: {
        types: {
          Website: {
            records: [
              { domain: "example.com", rank: 12, tags: ["x"] },
              { domain: "example.org", rank: null },
            ],
          },
          Page: { records: [{ url: "/", nested: { ok: true } }] },
          Nothing: { records: [] },
        },
      },
      meta: {
        start: 1_700_000_000_000,
        end: 1_700_000_000_250,
        requestTime: 1.5,
        sourceTime: 200.25,
        responseTime: 3,
        limiterUsage: 4,
        limiterQuota: 10,
        percentQuota: 0.4,
        source: "sitestats",
        query: "site",
        node: "n1",
        attempts: 2,
        pages: 1,
      },
      taskId: "refresh@60000/qs/example.com/site",
    };
    assert.deepEqual(c.decode(c.encode(resp)), resp);
    assert.deepEqual(c.fromJson(JSON.parse(JSON.stringify(c.toJson(resp)))), resp);
    // epoch-ms int64 values come back as numbers, not Long objects or strings
    assert.equal(typeof c.decode(c.encode(resp)).meta.start, "number");
  });

  it("round-trips DeadLetter bytes as Uint8Array and accepts base64 (standard and URL-safe) in JSON", () => {
    const c = codec("DeadLetter");
    const payload = new Uint8Array([0, 1, 2, 250, 251, 255]);
    const dl = {
      stream: "MACHINA_FETCH",
      subject: "machina.task.fetch.s",
      streamSeq: 42,
      deliveries: 5,
      errorCode: "UPSTREAM",
      errorMessage: "boom",
      payload,
      contentType: "application/x-protobuf",
    };
    const back = c.decode(c.encode(dl));
    assert.ok(back.payload instanceof Uint8Array);
    assert.deepEqual([...back.payload], [...payload]);
    assert.deepEqual({ ...back, payload: [...back.payload] }, { ...dl, payload: [...payload] });

    const std = Buffer.from(payload).toString("base64"); // "AAEC+vv/"
    const urlSafe = Buffer.from(payload).toString("base64url"); // "AAEC-vv_"
    assert.notEqual(std, urlSafe);
    assert.deepEqual([...c.fromJson({ payload: std }).payload], [...payload]);
    assert.deepEqual([...c.fromJson({ payload: urlSafe }).payload], [...payload]);
    assert.deepEqual([...c.fromJson({ payload }).payload], [...payload]);
  });

  it("keeps optional percentQuota absent when unset and present (even at 0) when set", () => {
    const m = codec("Meta");
    const absent = m.decode(m.encode({ source: "s" }));
    assert.equal(Object.hasOwn(absent, "percentQuota"), false);
    assert.equal("percentQuota" in m.toJson({}), false);
    assert.equal("percentQuota" in m.fromJson({ percent_quota: null }), false);

    const zero = m.decode(m.encode({ percentQuota: 0 }));
    assert.equal(zero.percentQuota, 0);
    assert.equal(m.toJson({ percentQuota: 0 }).percentQuota, 0);
    assert.equal(m.decode(m.encode({ percentQuota: 1.25 })).percentQuota, 1.25);
    // the same presence rule holds for QuotaWindow.percent
    const w = codec("QuotaWindow");
    assert.equal("percent" in w.decode(w.encode({ perMs: 1000 })), false);
    assert.equal(w.decode(w.encode({ percent: 0 })).percent, 0);
  });

  it("round-trips a PatchOp whose google.protobuf.Value holds any JSON", () => {
    const c = codec("PatchOp");
    for (const value of ["text", 3.5, true, [1, "two", null], { a: { b: [false] } }]) {
      const op = { op: "replace", path: "/fetch/x", value, from: "" };
      assert.deepEqual(c.decode(c.encode(op)), op);
      assert.deepEqual(c.fromJson(JSON.parse(JSON.stringify(c.toJson(op)))), op);
    }
  });

  it("keeps int64 counts above 2^32 exact", () => {
    const c = codec("CountReply");
    assert.equal(c.decode(c.encode({ count: 2 ** 40 + 7 })).count, 2 ** 40 + 7);
    // proto3 JSON writes int64 as strings; those are accepted too
    assert.equal(c.fromJson({ count: "1099511627783" }).count, 2 ** 40 + 7);
  });

  it("returns the same codec object for the same name and names the full type", () => {
    assert.equal(codec("Lead"), codec("Lead"));
    assert.equal(codec("Lead").typeName, "machina.v1.Lead");
    assert.equal(codec("Error").typeName, "machina.v1.Error");
  });
});

describe("strict shape", () => {
  it("rejects an unknown top-level field, naming it and listing the known fields", () => {
    const err = throwsShape(
      () => codec("QueryRequest").fromJson({ source: "s", sorce: "x" }),
      "sorce",
      /unknown field/,
    );
    assert.equal(err.typeName, "QueryRequest");
    assert.match(err.message, /^QueryRequest\.sorce: /);
    for (const f of ["source", "query", "lead", "requestId"]) assert.match(err.message, new RegExp(`\\b${f}\\b`));
  });

  it("names the nested path of an unknown field and lists the nested type's fields", () => {
    const err = throwsShape(
      () => codec("QueryRequest").fromJson({ lead: { id: "x", arg: {} } }),
      "lead.arg",
      /known fields of Lead: id, args/,
    );
    assert.match(err.message, /^QueryRequest\.lead\.arg: /);
  });

  it("names map keys and list indexes in paths", () => {
    throwsShape(
      () => codec("QueryResponse").fromJson({ data: { types: { Website: { records: [{}], extra: 1 } } } }),
      "data.types.Website.extra",
      /unknown field/,
    );
    throwsShape(
      () => codec("QuotaReply").fromJson({ windows: [{ perMs: 1 }, { perMs: "soon" }] }),
      "windows[1].perMs",
      /expected an integer/,
    );
    throwsShape(() => codec("NodeInfo").fromJson({ gpus: ["a", 3] }), "gpus[1]", /expected a string/);
  });

  it("treats Object.prototype names as unknown fields rather than crashing", () => {
    for (const key of ["constructor", "toString", "hasOwnProperty", "__proto__"]) {
      throwsShape(() => codec("QueryRequest").fromJson(JSON.parse(`{"${key}": 1}`)), key, /unknown field/);
    }
  });

  it("rejects wrong types with the field path and what was given", () => {
    throwsShape(
      () => codec("Meta").fromJson({ attempts: "three" }),
      "attempts",
      /expected an integer, got the string "three"/,
    );
    throwsShape(() => codec("Meta").fromJson({ attempts: 1.5 }), "attempts", /expected an integer, got number 1\.5/);
    throwsShape(
      () => codec("QueryRequest").fromJson({ source: { name: "x" } }),
      "source",
      /expected a string, got an object/,
    );
    throwsShape(() => codec("QueryRequest").fromJson({ requestId: 5 }), "requestId", /expected a string, got number 5/);
    throwsShape(() => codec("Lead").fromJson({ args: 5 }), "args", /expected a JSON object, got number 5/);
    throwsShape(() => codec("Lead").fromJson({ args: ["a"] }), "args", /expected a JSON object, got an array/);
    throwsShape(() => codec("Ack").fromJson({ ok: "yes" }), "ok", /expected true or false/);
    throwsShape(() => codec("Meta").fromJson({ sourceTime: "fast" }), "sourceTime", /expected a number/);
    throwsShape(() => codec("Records").fromJson({ records: { a: 1 } }), "records", /expected an array, got an object/);
    throwsShape(() => codec("EntitySet").fromJson({ types: [] }), "types", /expected an object \(map\), got an array/);
    throwsShape(() => codec("DeadLetter").fromJson({ payload: "not base64!" }), "payload", /expected base64 bytes/);
    throwsShape(() => codec("DeadLetter").fromJson({ payload: [1, 2] }), "payload", /expected base64 bytes/);
  });

  it("rejects negative values for unsigned fields and out-of-range 32-bit values instead of wrapping them", () => {
    throwsShape(() => codec("DeadLetter").fromJson({ streamSeq: -1 }), "streamSeq", /non-negative/);
    throwsShape(() => codec("Meta").fromJson({ attempts: 3_000_000_000 }), "attempts", /32-bit/);
    throwsShape(() => codec("Meta").fromJson({ pages: -2_147_483_649 }), "pages", /32-bit/);
    assert.equal(codec("Meta").fromJson({ attempts: 2_147_483_647 }).attempts, 2_147_483_647);
    assert.equal(codec("Meta").fromJson({ attempts: -5 }).attempts, -5);
  });

  it("accepts numeric strings for integer and float fields (proto3 JSON)", () => {
    const m = codec("Meta").fromJson({ start: "1700000000000", attempts: "-3", sourceTime: "2.5" });
    assert.equal(m.start, 1_700_000_000_000);
    assert.equal(m.attempts, -3);
    assert.equal(m.sourceTime, 2.5);
    throwsShape(() => codec("Meta").fromJson({ attempts: "1.5" }), "attempts", /expected an integer/);
    throwsShape(() => codec("Meta").fromJson({ sourceTime: " " }), "sourceTime", /expected a number/);
  });

  it("rejects a body that is not an object", () => {
    throwsShape(() => codec("QueryRequest").fromJson([]), "", /expected a JSON object, got an array/);
    throwsShape(() => codec("QueryRequest").fromJson("x"), "", /expected a JSON object/);
    throwsShape(() => codec("QueryRequest").fromJson(null), "", /expected a JSON object, got null/);
    throwsShape(() => codec("QueryRequest").encode(7 as never), "", /expected a JSON object/);
  });

  it("accepts snake_case proto field names and returns camelCase", () => {
    const r = codec("QueryRequest").fromJson({ request_id: "r-1", lead: { id: "a", args: { snake_key: 1 } } });
    assert.equal(r.requestId, "r-1");
    assert.equal("request_id" in r, false);
    // Struct keys are data, never renamed
    assert.deepEqual(r.lead.args, { snake_key: 1 });
    const t = codec("FetchTask").fromJson({ query_set: "qs", created_at: 5 });
    assert.equal(t.querySet, "qs");
    assert.equal(t.createdAt, 5);
    // encode takes snake_case too
    assert.equal(codec("FetchTask").decode(codec("FetchTask").encode({ query_set: "qs" } as never)).querySet, "qs");
  });

  it("reports malformed binary as ProtoShapeError naming the type", () => {
    const c = codec("QueryRequest");
    // field 1 (string) claims 5 bytes but only 1 follows
    throwsShape(() => c.decode(new Uint8Array([0x0a, 0x05, 0x61])), "", /^QueryRequest: malformed protobuf/);
    throwsShape(() => c.decode(new Uint8Array([0xff, 0xff, 0xff])), "", /malformed protobuf/);
    // a truncated copy of a valid encoding
    const good = c.encode({ source: "sitestats", lead: { id: "x", args: { a: 1 } } });
    throwsShape(() => c.decode(good.subarray(0, good.length - 2)), "", /malformed protobuf/);
  });
});

// One fully populated value of every message, typed against the TS interfaces: `Required<>` plus
// object-literal excess-property checks make tsc fail when types.ts gains, loses or renames a field,
// and the runtime checks below fail when the .proto files drift from these values.
const FULL: { [N in MessageName]: Required<MessageTypes[N]> } = {
  Meta: {
    start: 1,
    end: 2,
    requestTime: 3.5,
    sourceTime: 4.5,
    responseTime: 5.5,
    limiterUsage: 6,
    limiterQuota: 7,
    percentQuota: 0.5,
    source: "s",
    query: "q",
    node: "n",
    attempts: 8,
    pages: 9,
  },
  Lead: { id: "l", args: { a: 1 } },
  Records: { records: [{ a: 1 }] },
  EntitySet: { types: { T: { records: [{ a: 1 }] } } },
  Error: { code: "BAD_REQUEST", status: 400, message: "m", details: { f: "x" }, retryable: true },
  QueryRequest: { source: "s", query: "q", lead: { id: "l", args: { a: 1 } }, requestId: "r" },
  QueryResponse: {
    requestId: "r",
    source: "s",
    query: "q",
    lead: { id: "l", args: {} },
    data: { types: {} },
    meta: makeMeta({ start: 1, end: 2 }),
    taskId: "t",
    cursor: { key: "s.q.abc", value: "2024-01-01T00:00:00Z", order: 1704067200000, total: 2 },
  },
  QueryResponses: {
    responses: [
      {
        requestId: "r",
        source: "s",
        query: "q",
        lead: { id: "l", args: { a: 1 } },
        data: { types: { T: { records: [{ a: 1 }] } } },
        meta: makeMeta({ start: 1, end: 2 }),
        taskId: "t",
      },
    ],
  },
  FetchTask: {
    id: "i",
    source: "s",
    query: "q",
    lead: { id: "l", args: {} },
    trigger: "t",
    tick: 60000,
    createdAt: 5,
    querySet: "qs",
  },
  QuotaRequest: { source: "s" },
  QuotaWindow: { perMs: 1000, usage: 1, quota: 2, percent: 0.5, resetsAt: 3, align: "rolling", declared: 4 },
  QuotaCredential: {
    id: "primary",
    overQuota: true,
    windows: [{ perMs: 1000, usage: 2, quota: 2, resetsAt: 3, align: "rolling" }],
    benchedUntil: 5,
    pausedUntil: 6,
  },
  QuotaReply: {
    source: "s",
    overQuota: true,
    windows: [{ perMs: 1000, usage: 1, quota: 2, resetsAt: 3, align: "clock" }],
    credentials: [{ id: "k0123456789ab", overQuota: false, windows: [] }],
  },
  Ledger: {
    name: "n",
    leads: [{ id: "l", args: {} }],
    source: "kv",
    next: "p2",
    total: 9,
    leadId: "domain",
    fields: ["domain", "rank"],
    rejected: [{ id: "bad", error: "missing field" }],
    rejectedTotal: 1,
  },
  LedgerRequest: { name: "n", id: "l", limit: 5, page: "p", leads: [{ id: "l", args: { a: 1 } }], ids: ["l"] },
  LeadProblem: { id: "l", error: "missing field" },
  LedgerEditReply: { name: "n", written: 2, deleted: 1, rejected: [{ id: "x", error: "bad" }], total: 4 },
  TriggerInfo: {
    name: "t",
    type: "cron",
    schedule: "0 9 * * 1-5",
    timezone: "Europe/Paris",
    nextFire: 5,
    querySets: ["q"],
    ledgers: ["l"],
    lastTickId: "t@1",
    lastState: "done",
  },
  TriggersReply: {
    triggers: [
      {
        name: "t",
        type: "manual",
        schedule: "manual",
        timezone: "",
        nextFire: 0,
        querySets: ["q"],
        ledgers: [],
        lastTickId: "",
        lastState: "",
      },
    ],
  },
  SourceInfo: { name: "s", queries: ["q"] },
  SourcesReply: { sources: [{ name: "s", queries: ["q", "r"] }] },
  CursorsRequest: { source: "s", query: "q", lead: "l", limit: 5 },
  CursorInfo: {
    source: "s",
    query: "q",
    lead: "l",
    value: "2024-02-01T00:00:00Z",
    initial: "2024-01-01T00:00:00Z",
    stored: true,
    updatedAt: 9,
    answer: "t:p1",
  },
  CursorsReply: {
    cursors: [{ source: "s", query: "q", lead: "l", value: 3, initial: 0, stored: false, updatedAt: 0, answer: "" }],
    truncated: true,
  },
  CursorResetRequest: { source: "s", query: "q", lead: "l", allLeads: false, value: "2024-03-01T00:00:00Z" },
  CursorResetReply: {
    reset: 1,
    cursors: [
      { source: "s", query: "q", lead: "l", value: 1, initial: 0, stored: true, updatedAt: 2, answer: "reset" },
    ],
  },
  QuerySet: { name: "n", source: "s", queries: ["q"], ledger: "l", resources: "ram=1024" },
  FireRequest: { trigger: "t", force: true },
  FireReply: { trigger: "t", tick: 1, tasks: 2, duplicates: 3, superseded: 1, tickId: "t@1", state: "done" },
  BuildQuerySetRequest: { querySet: "qs" },
  BuildQuerySetReply: {
    tasks: [
      {
        id: "i",
        source: "s",
        query: "q",
        lead: { id: "l", args: {} },
        trigger: "t",
        tick: 1,
        createdAt: 2,
        querySet: "qs",
      },
    ],
  },
  RecordBatch: {
    id: "i",
    type: "T",
    source: "s",
    query: "q",
    taskId: "t",
    fetchedAt: 1,
    records: [{ a: 1 }],
    firstSeq: 3,
    cursor: { key: "s.q.abc", value: 7, order: 7, total: 1, answer: "t" },
  },
  RecordBatches: {
    batches: [
      { id: "i", type: "T", source: "s", query: "q", taskId: "t", fetchedAt: 1, records: [{ a: 1 }], firstSeq: 1 },
      {
        id: "j",
        type: "T",
        source: "s",
        query: "q",
        taskId: "u",
        fetchedAt: 2,
        records: [{ b: "x" }, {}],
        firstSeq: 2,
      },
    ],
  },
  FailedWindow: { key: { id: "a" }, windowStart: 1, code: "BAD_REQUEST", error: "e", attempts: 5, failedAt: 2 },
  CleanFailedReply: {
    failed: [{ key: { id: "a" }, windowStart: 1, code: "BAD_REQUEST", error: "e", attempts: 5, failedAt: 2 }],
    next: "ab",
  },
  CleanRetryRequest: { keys: [{ id: "a" }] },
  DeadLetter: {
    stream: "S",
    subject: "x.y",
    streamSeq: 1,
    deliveries: 2,
    errorCode: "E",
    errorMessage: "m",
    payload: new Uint8Array([1, 2]),
    contentType: "ct",
  },
  CreateRequest: { records: [{ a: 1 }] },
  ReadRequest: { criteria: { a: 1 }, offset: 1, limit: 2, criteriaList: [{ a: 1 }, { a: 2, b: "x" }] },
  KeyRequest: { key: { a: 1 }, keys: [{ a: 1 }, { a: "two" }] },
  DataChanged: { type: "website", key: { domain: "a.com" }, op: "merged" },
  UpdateRequest: {
    key: { a: 1 },
    alterations: { b: 2 },
    items: [
      { key: { a: 1 }, alterations: { b: 2 } },
      { key: { a: 3 }, alterations: { b: null, c: [1, "x"] } },
    ],
    clear: ["c"],
  },
  UpdateItem: { key: { a: 1 }, alterations: { b: 2, c: { d: true } } },
  KeysRequest: { limit: 50, page: "00ab" },
  KeysReply: { keys: [{ domain: "a.example" }], next: "01cd" },
  DriftField: { field: "country", firstSeen: 1, lastSeen: 2, exampleType: "string" },
  DriftReply: { fields: [{ field: "country", firstSeen: 1, lastSeen: 2, exampleType: "string" }] },
  SchemaVersion: { version: 2, hash: "h", appliedAt: 3, origin: "o.yaml", cql: "ALTER", definition: { key: ["k"] } },
  SchemaReply: {
    type: "t",
    version: 2,
    history: [{ version: 2, hash: "h", appliedAt: 3, origin: "o.yaml", cql: "", definition: {} }],
  },
  CountRequest: { criteria: { a: 1 }, criteriaList: [{ a: 1 }, { a: 2, source: "s" }] },
  RecordsReply: { records: [{ a: 1 }] },
  RecordReply: { record: { a: 1 }, records: [{ a: 1 }, { a: 2, b: "x" }], missing: [{ a: 3 }] },
  CountReply: { count: 2 ** 40 + 5, counts: [2 ** 40, 0, 5] },
  WriteReply: { affected: 4 },
  SeriesRequest: {
    key: { domain: "a.com" },
    field: "visits",
    from: 1000,
    to: 2000,
    store: "dump",
    limit: 10,
    page: "p",
  },
  SeriesReply: {
    times: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]),
    values: new Uint8Array([8, 7, 6, 5, 4, 3, 2, 1]),
    count: 1,
    next: "n",
  },
  CacheStats: {
    kind: "memory",
    entries: 3,
    bytes: 300,
    maxBytes: 1000,
    hits: 5,
    misses: 2,
    evictions: 1,
    invalidations: 4,
  },
  CacheInvalidate: { type: "website", key: { domain: "a.com" } },
  ComputeRequest: { args: { a: 1 }, limit: 10, page: "p" },
  ComputeReply: { name: "n", rows: [{ a: 1 }], cached: true, next: "p2" },
  NodeInfo: {
    id: "i",
    service: "fetch",
    role: "processor",
    hostname: "h",
    pid: 1,
    cpuCores: 2,
    ramBytes: 3,
    gpus: ["g"],
    storageBytes: 4,
    network: ["eth0"],
    startedAt: 5,
    seenAt: 6,
    version: "v",
    configHead: "c",
    owns: ["website.0"],
    load1: 0.5,
    cpuPercent: 12.5,
    rssBytes: 7,
    uptimeMs: 8,
    handlerTimes: [{ kind: "endpoint", name: "nodes", bounds: [0.001, 0.01], counts: [1, 2, 3], sum: 0.5 }],
  },
  NodeList: { nodes: [] },
  PatchOp: { op: "add", path: "/a", value: { b: 1 }, from: "/c" },
  ConfigPatch: {
    hash: "h",
    parent: "p",
    ops: [{ op: "remove", path: "/a", value: null, from: "" }],
    author: "a",
    createdAt: 1,
  },
  ConfigGetRequest: { path: "fetch/sources/sitestats" },
  ConfigDocument: { head: "h", root: "r", path: "fetch", value: { sources: { s: { limit: 5 } } }, length: 1 },
  ConfigPatchRequest: { parent: "p", ops: [{ op: "replace", path: "/a", value: 3, from: "" }], author: "ops" },
  ConfigHistoryRequest: { limit: 10 },
  ConfigHistory: {
    root: "r",
    head: "h",
    patches: [
      { hash: "h", parent: "r", ops: [{ op: "add", path: "/b", value: "x", from: "" }], author: "a", createdAt: 2 },
    ],
  },
  ConfigExplainRequest: { key: "fetch.sources.sitestats.limiter" },
  ConfigExplainReply: { key: "k", value: [1, "two"], layer: "patch", origin: "h", head: "h" },
  Empty: {},
  Ack: { ok: true, id: "i" },
  HandlerTimes: { kind: "worker", name: "data-dump", bounds: [0.5], counts: [1, 2], sum: 1.5 },
  ConnectReply: { ok: true, id: "i", heartbeatMs: 5000 },
  StatsRequest: { from: 1, to: 2, stepMs: 3, series: ["dlq.messages"], prefix: "node.", reducer: "max" },
  StatsBucket: { t: 1, value: 2.5, n: 3 },
  StatsSeries: { name: "dlq.messages", reducer: "mean", buckets: [{ t: 1, value: 2, n: 1 }] },
  StatsReply: { from: 1, to: 2, stepMs: 1, series: [] },
  ScaleAdvice: {
    service: "fetch",
    replicas: 2,
    recommended: 3,
    p99Ms: 12.5,
    baselineP99Ms: 2,
    targetP99Ms: 10,
    lag: 4000,
    targetLag: 1000,
    ratio: 2,
    reason: "scale out",
  },
  ScaleReply: {
    services: [
      {
        service: "data",
        replicas: 1,
        recommended: 1,
        p99Ms: 1,
        baselineP99Ms: 1,
        targetP99Ms: 10,
        lag: 0,
        targetLag: 1000,
        ratio: 0.1,
        reason: "keep",
      },
    ],
    at: 5,
  },
  DeadLetterFilter: { code: "NOT_FOUND", subject: "p.task.store.*", type: "t", stream: "STORE", seqs: [1, 2] },
  DeadLetterListRequest: { code: "c", subject: "s", type: "t", stream: "S", limit: 3 },
  DeadLetterGroup: { code: "c", subject: "s", type: "t", stream: "S", count: 2, oldestTime: 3, oldestSeq: 4 },
  DeadLetterEntry: { seq: 1, stream: "S", subject: "s", type: "t", code: "c", message: "m", deliveries: 2, time: 3 },
  DeadLetterListReply: {
    total: 1,
    groups: [{ code: "c", subject: "s", type: "t", stream: "S", count: 1, oldestTime: 3, oldestSeq: 4 }],
    letters: [{ seq: 4, stream: "S", subject: "s", type: "t", code: "c", message: "m", deliveries: 1, time: 3 }],
    moreGroups: 5,
  },
  DeadLetterShowRequest: { seq: 7 },
  DeadLetterShowReply: {
    seq: 1,
    stream: "S",
    subject: "s",
    streamSeq: 2,
    type: "t",
    code: "c",
    message: "m",
    deliveries: 3,
    time: 4,
    contentType: "ct",
    payloadType: "RecordBatch",
    payload: { id: "b", records: [{ a: 1 }] },
    payloadRaw: new Uint8Array([9]),
    payloadError: "e",
  },
  DeadLetterFailure: { seq: 1, code: "c", reason: "r" },
  DeadLetterReplayReply: { replayed: 1, failed: 1, failures: [{ seq: 1, code: "c", reason: "r" }] },
  DeadLetterPurgeReply: { purged: 2 },
};

const tsNames = Object.keys(FULL) as MessageName[];

describe(".proto files and types.ts agree", () => {
  it("messageNames() lists exactly the messages of the TS MessageTypes interface", () => {
    assert.deepEqual([...messageNames()].sort(), [...tsNames].sort());
  });

  for (const name of tsNames) {
    it(`${name}: proto fields equal the TS interface's keys and a full value survives both encodings`, () => {
      const c = codec(name);
      const full = FULL[name] as MessageTypes[typeof name];
      // fromJson is strict, so a TS key the proto lacks fails here, naming the field
      const viaJson = c.fromJson(
        JSON.parse(
          JSON.stringify(c.toJson(full), (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString("base64") : v)),
        ),
      );
      const viaBinary = c.decode(c.encode(full));
      // a proto field the TS type lacks shows up as an extra key (defaults are filled in)
      assert.deepEqual(Object.keys(viaBinary).sort(), Object.keys(full).sort(), "proto fields vs TS keys");
      assert.deepEqual(norm(viaBinary), norm(full), "binary round trip");
      assert.deepEqual(norm(viaJson), norm(full), "JSON round trip");
      // scalar and repeated defaults have the JS type of the TS sample (message, Struct and Value
      // fields default to null: proto3 has no value for an absent message)
      const defaults = c.toJson({}) as Record<string, unknown>;
      for (const [k, v] of Object.entries(full)) {
        if (!(k in defaults) || defaults[k] === null) continue; // `optional` fields are absent by default
        assert.equal(kind(defaults[k]), kind(v), `${name}.${k} default type`);
      }
    });
  }
});

// codec.encode takes a shortcut for plain, well-formed values (libs/protos/src/fast-encode.ts) and the
// general path for the rest; both must write the same bytes, and the shortcut must refuse nothing
// the general path accepts (it hands such values over) nor accept anything it refuses.
describe("binary encoding: the shortcut writes what the general path writes", () => {
  const same = <N extends MessageName>(name: N, value: Partial<MessageTypes[N]>, what: string) =>
    assert.deepEqual(
      Buffer.from(codec(name).encode(value)).toString("hex"),
      Buffer.from(encodeGeneral(name, value)).toString("hex"),
      `${name}: ${what}`,
    );

  it("for a full value of every message", () => {
    for (const name of tsNames) same(name, FULL[name] as MessageTypes[typeof name], "full value");
  });

  it("for Struct args of every JSON kind, unicode text, negative and 64-bit numbers, and empty values", () => {
    same("QueryRequest", { source: "s", lead: { id: "x", args: nestedArgs }, requestId: "" }, "nested args");
    same(
      "QueryRequest",
      { source: "é😀 日本語 a long string with unicode é😀 日本語 …", lead: { id: "\ud800x" } } as never,
      "unicode",
    );
    same("QueryRequest", { lead: { id: "", args: {} } }, "empty args");
    same(
      "QueryRequest",
      { lead: { id: "x", args: { undef: undefined, n: [undefined, 1] } } } as never,
      "undefined in Struct",
    );
    same(
      "Error",
      { code: "X", status: -5, message: "m", retryable: false, details: { retryAfterMs: 1.5 } },
      "int32 < 0",
    );
    same("CountReply", { count: 2 ** 40 + 3 }, "int64 > 2^32");
    same("CountReply", { count: -(2 ** 40) }, "int64 < 0");
    same("CountReply", { count: 0 }, "int64 zero");
    same(
      "NodeInfo",
      { ramBytes: Number.MAX_SAFE_INTEGER, cpuCores: 0, pid: 127, id: "", seenAt: 128, gpus: ["a", ""] },
      "varint edges",
    );
    same("Meta", { percentQuota: 0 }, "optional double at 0");
    same("Meta", { percentQuota: Number.NaN, requestTime: -0, sourceTime: Infinity }, "odd doubles");
    same(
      "QueryResponse",
      {
        requestId: "r",
        data: { types: { website: { records: [{ a: 1 }, { b: [{}, []] }] }, empty: { records: [] }, none: {} } },
      } as never,
      "EntitySet map",
    );
    same("DeadLetter", { payload: new Uint8Array([0, 1, 255]) }, "bytes");
    same("DeadLetterShowReply", { payloadRaw: new Uint8Array(0) }, "empty bytes");
  });

  it("for values only the general path takes: snake_case keys, numbers as text, base64 bytes, Dates in Struct", () => {
    same("QueryRequest", { request_id: "r", lead: { id: "x" } } as never, "snake_case");
    same("CountReply", { count: "12" } as never, "int64 as text");
    same("Meta", { requestTime: "1.5" } as never, "double as text");
    same("DeadLetter", { payload: "AAH/" } as never, "base64");
    same("QueryRequest", { lead: { id: "x", args: { at: new Date(0) } } } as never, "Date in a Struct");
    same("DeadLetterFilter", { seqs: [1, 2, 300] }, "packed repeated uint64");
    same("NodeInfo", { ramBytes: 2 ** 60, storageBytes: -(2 ** 60) }, "64-bit beyond 2^53");
  });

  it("refuses what the general path refuses, with the same error", () => {
    const bad: [MessageName, unknown][] = [
      ["QueryRequest", { sauce: "x" }],
      ["QueryRequest", { lead: { id: 5 } }],
      ["QueryRequest", { lead: { id: "x", args: JSON.parse('{"__proto__": 1}') } }],
      ["QueryResponse", { data: { types: { w: { records: [null] } } } }],
      ["Error", { status: 2 ** 31 }],
      ["CountReply", { count: 1.5 }],
      ["NodeInfo", { cpuCores: "x" }],
      ["QueryRequest", [1]],
    ];
    for (const [name, value] of bad) {
      const general = (() => {
        try {
          encodeGeneral(name, value as never);
        } catch (err) {
          return (err as Error).message;
        }
        return "accepted";
      })();
      assert.notEqual(general, "accepted", `${name} ${JSON.stringify(value)} is refused by the general path`);
      assert.throws(() => codec(name).encode(value as never), { message: general });
    }
  });
});

// codec.decode takes a shortcut for well-formed bytes (libs/protos/src/fast-decode.ts) and the
// general path for the rest; both must return the same object, with the same keys in the same order.
describe("binary decoding: the shortcut returns what the general path returns", () => {
  const same = <N extends MessageName>(name: N, bytes: Uint8Array, what: string) => {
    const fast = codec(name).decode(bytes);
    const general = decodeGeneral(name, bytes);
    assert.deepStrictEqual(fast, general, `${name}: ${what}`);
    assert.deepEqual(Object.keys(fast), Object.keys(general), `${name}: ${what}: key order`);
    assert.equal(JSON.stringify(norm(fast)), JSON.stringify(norm(general)), `${name}: ${what}: nested key order`);
  };

  it("for a full value and an empty value of every message, from a Buffer and from a plain Uint8Array", () => {
    for (const name of tsNames) {
      const bytes = codec(name).encode(FULL[name] as MessageTypes[typeof name]);
      same(name, bytes, "full value");
      same(name, new Uint8Array(bytes), "full value, Uint8Array");
      same(name, new Uint8Array(0), "empty");
    }
  });

  it("for Struct args of every JSON kind, unicode text, negative and 64-bit numbers", () => {
    const q = codec("QueryRequest");
    const args = { ...nestedArgs, text: "é😀 日本語", long: "x".repeat(100), longUnicode: "é".repeat(50) };
    const bytes = q.encode({ source: "s", lead: { id: "é😀", args }, requestId: "r" });
    same("QueryRequest", bytes, "nested args");
    same("QueryRequest", new Uint8Array(bytes), "nested args, Uint8Array");
    same("Error", codec("Error").encode({ status: -5, details: { a: [1, { b: null }] } }), "int32 < 0");
    same("CountReply", codec("CountReply").encode({ count: -(2 ** 40) }), "int64 < 0");
    same("NodeInfo", codec("NodeInfo").encode({ ramBytes: 2 ** 60, storageBytes: Number.MAX_SAFE_INTEGER }), "2^60");
    same("Meta", codec("Meta").encode({ percentQuota: 0, attempts: 3 }), "optional field present");
    same("DeadLetterFilter", codec("DeadLetterFilter").encode({ seqs: [1, 300] }), "packed repeated uint64");
  });

  it("for bytes only the general path reads: unknown fields, repeated fields, odd encodings", () => {
    const q = codec("QueryRequest").encode({ source: "s", requestId: "r" });
    // an unknown field 15 (varint), 16 (fixed32) and 17 (fixed64) before the known ones
    const unknown = Buffer.concat([
      Buffer.from([0x78, 0x05, 0x85, 0x01, 1, 2, 3, 4, 0x89, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]),
      q,
    ]);
    same("QueryRequest", unknown, "unknown fields");
    same("QueryRequest", Buffer.concat([q, q]), "every field twice");
    // a bool written as a 64-bit varint whose low 32 bits are zero
    same("Error", Buffer.from([0x28, 0x80, 0x80, 0x80, 0x80, 0x10]), "bool from the low 32 bits");
  });

  it("refuses malformed bytes with the general path's error", () => {
    const c = codec("QueryResponse");
    const good = c.encode({ requestId: "r", data: { types: { w: { records: [{ a: 1 }] } } } } as never);
    for (const bad of [good.subarray(0, good.length - 2), Buffer.from([0xff, 0xff, 0xff]), Buffer.from([0x0b])]) {
      const general = (() => {
        try {
          return JSON.stringify(decodeGeneral("QueryResponse", bad));
        } catch {
          return `error`;
        }
      })();
      if (general === "error") assert.throws(() => c.decode(bad), /malformed protobuf/);
      else assert.equal(JSON.stringify(c.decode(bad)), general);
    }
  });
});

function kind(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (v instanceof Uint8Array) return "bytes";
  return typeof v;
}

function norm(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v, (_k, x) => (x instanceof Uint8Array ? { bytes: [...x] } : x)));
}
