// Covers the where filter shared by top_n, stats and matching without servers: the args schema
// (through a computation, so problems read `computation "t": args.where.<field>.<op>: …`), every
// operator over each field type, missing values, operands of the wrong type, unknown operators
// with the nearest suggested, and Object.prototype names (`__proto__`, `constructor`) as field
// and operator names.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { field } from "@machina/config";
import type { JsonObject } from "@machina/protos";
import { WHERE_OPS, compileWhere, defineComputation, whereArg, whereFields, type ComputeDeps } from "@machina/compute";
import { isMachinaError } from "@machina/wire";

const FIELDS: Record<string, string> = {
  id: "text",
  name: "text",
  rank: "int",
  visits: "bigint",
  score: "double",
  active: "boolean",
  seen: "timestamp",
  tags: "json",
  note: "json",
};

const RECORDS: JsonObject[] = [
  {
    id: "a",
    name: "Acme",
    rank: 1,
    visits: 5000,
    score: 0.5,
    active: true,
    seen: "2024-01-01T00:00:00.000Z",
    tags: ["x", "y"],
    note: "big one",
  },
  {
    id: "b",
    name: "Blue",
    rank: 2,
    visits: 300,
    score: 1.5,
    active: false,
    seen: "2024-02-01T00:00:00.000Z",
    tags: ["y"],
    note: 7,
  },
  { id: "c", name: "acme labs", rank: 3, visits: 10, score: -2, active: true, seen: null, tags: [], note: null },
  { id: "d", name: null, rank: null, visits: null, score: null, active: null, seen: null, tags: null, note: null },
  { id: "e", name: "Zed", rank: 10 },
];

// A computation whose only arg is the filter, answering the ids of the records that pass it.
const filtered = defineComputation("t", {
  description: "test",
  args: field.object({ where: whereArg() }),
  async run({ where }) {
    const test = compileWhere('computation "t"', "site", FIELDS, where);
    return RECORDS.filter(test).map((r) => ({ id: r.id }));
  },
});

const deps = {} as ComputeDeps;
const ids = async (where: unknown) =>
  (await filtered.run({ where } as JsonObject, deps)).rows.map((r) => r.id).join("");

const refused = (message: RegExp, path?: string) => (err: unknown) => {
  assert.ok(isMachinaError(err, "BAD_REQUEST"), String(err));
  assert.match((err as Error).message, message);
  if (path !== undefined) assert.equal((err as { details?: { field?: string } }).details?.field, path);
  return true;
};

describe("compute: where filter", () => {
  it("lists its operators", () => {
    assert.deepEqual(
      [...WHERE_OPS],
      ["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "prefix", "exists"],
    );
    assert.deepEqual(whereFields({ rank: 1, name: { prefix: "A" } }), [
      ["args.where.rank", "rank"],
      ["args.where.name", "name"],
    ]);
    assert.deepEqual(whereFields(undefined), []);
  });

  it("keeps every record for an empty filter, and ANDs fields and operators", async () => {
    assert.equal(await ids({}), "abcde");
    assert.equal(await ids({ rank: { gte: 2, lt: 10 } }), "bc");
    assert.equal(await ids({ active: true, rank: { gt: 1 } }), "c");
  });

  it("equality: a bare value and eq, on text, numbers, booleans and json", async () => {
    assert.equal(await ids({ name: "Acme" }), "a");
    assert.equal(await ids({ name: { eq: "acme" } }), "", "text equality is exact");
    assert.equal(await ids({ rank: 2 }), "b");
    assert.equal(await ids({ visits: { eq: 300 } }), "b");
    assert.equal(await ids({ score: -2 }), "c");
    assert.equal(await ids({ active: false }), "b");
    assert.equal(await ids({ note: 7 }), "b");
    assert.equal(await ids({ note: "big one" }), "a");
  });

  it("ne and nin keep missing values; the other operators never match them", async () => {
    assert.equal(await ids({ rank: { ne: 2 } }), "acde");
    assert.equal(await ids({ active: { ne: true } }), "bde");
    assert.equal(await ids({ rank: { nin: [1, 3] } }), "bde");
    assert.equal(await ids({ rank: { in: [1, 3, 99] } }), "ac");
    assert.equal(await ids({ name: { in: ["Blue", "Zed"] } }), "be");
    assert.equal(await ids({ active: { in: [false] } }), "b");
    assert.equal(await ids({ rank: { lt: 100 } }), "abce");
  });

  it("orders numbers numerically and text lexically", async () => {
    assert.equal(await ids({ rank: { gt: 2 } }), "ce");
    assert.equal(await ids({ rank: { gte: 2 } }), "bce");
    assert.equal(await ids({ rank: { lt: 2 } }), "a");
    assert.equal(await ids({ rank: { lte: 2 } }), "ab");
    assert.equal(await ids({ score: { gt: 0.5 } }), "b");
    assert.equal(await ids({ visits: { gte: 300, lte: 5000 } }), "ab");
    // "Zed" < "acme labs": code points, capitals first.
    assert.equal(await ids({ name: { gt: "B" } }), "bce");
    assert.equal(await ids({ name: { lt: "a" } }), "abe");
  });

  it("compares timestamps as instants, given as ISO text in any form or epoch ms", async () => {
    assert.equal(await ids({ seen: { gt: "2024-01-15" } }), "b");
    assert.equal(await ids({ seen: "2024-01-01T00:00:00Z" }), "a");
    assert.equal(await ids({ seen: { eq: "2024-01-01T01:00:00+01:00" } }), "a");
    assert.equal(await ids({ seen: { lt: Date.parse("2024-02-01T00:00:00Z") } }), "a");
    assert.equal(await ids({ seen: { lte: Date.parse("2024-02-01T00:00:00Z") } }), "ab");
    assert.equal(await ids({ seen: { in: ["2024-02-01T00:00:00Z", 0] } }), "b");
  });

  it("contains: a substring of text, an element of a json list; prefix: a text's start", async () => {
    assert.equal(await ids({ name: { contains: "cme" } }), "ac");
    assert.equal(await ids({ tags: { contains: "y" } }), "ab");
    assert.equal(await ids({ tags: { contains: "x" } }), "a");
    assert.equal(await ids({ note: { contains: "big" } }), "a", "a json text is searched too");
    assert.equal(await ids({ name: { prefix: "acme" } }), "c");
    assert.equal(await ids({ name: { prefix: "" } }), "abce");
  });

  it("exists: true keeps records with a value, false those without", async () => {
    assert.equal(await ids({ rank: { exists: true } }), "abce");
    assert.equal(await ids({ score: { exists: false } }), "de");
    assert.equal(await ids({ tags: { exists: true } }), "abc", "an empty list is a value");
  });

  it("refuses operands of the wrong type naming the field and operator", async () => {
    const cases: [unknown, string, RegExp][] = [
      [{ rank: "2" }, "args.where.rank", /field "rank" of type site is int; expected a number, got "2"/],
      [{ rank: { gt: "2" } }, "args.where.rank.gt", /field "rank" of type site is int; expected a number, got "2"/],
      [{ name: { gt: 5 } }, "args.where.name.gt", /field "name" of type site is text; expected a string, got 5/],
      [
        { active: { eq: 1 } },
        "args.where.active.eq",
        /field "active" of type site is boolean; expected true or false, got 1/,
      ],
      [
        { seen: { gt: "yesterday" } },
        "args.where.seen.gt",
        /field "seen" of type site is timestamp; expected an instant/,
      ],
      [
        { rank: { in: [1, "2"] } },
        "args.where.rank.in[1]",
        /field "rank" of type site is int; expected a number, got "2"/,
      ],
      [
        { name: { contains: 5 } },
        "args.where.name.contains",
        /field "name" of type site is text; expected a string, got 5/,
      ],
    ];
    for (const [where, path, message] of cases)
      await assert.rejects(
        ids(where),
        refused(new RegExp(`^computation "t": ${path.replace(/[.[\]]/g, "\\$&")}: ${message.source}`), path),
      );
  });

  it("refuses an operator the field's type has no meaning for, listing the ones it has", async () => {
    await assert.rejects(
      ids({ active: { gt: 0 } }),
      refused(
        /^computation "t": args\.where\.active\.gt: gt does not apply to field "active" of type site, which is boolean; its operators: eq, ne, in, nin, exists$/,
        "args.where.active.gt",
      ),
    );
    await assert.rejects(
      ids({ rank: { contains: 1 } }),
      refused(/args\.where\.rank\.contains: contains does not apply/),
    );
    await assert.rejects(
      ids({ seen: { prefix: "2024" } }),
      refused(/args\.where\.seen\.prefix: prefix does not apply/),
    );
  });

  it("refuses malformed conditions through the args schema", async () => {
    await assert.rejects(
      ids({ rank: { gtt: 1 } }),
      refused(
        /^computation "t": args\.where\.rank\.gtt: unknown key \(did you mean "gt"\?\); expected one of eq, ne, gt, gte, lt, lte, in, nin, contains, prefix, exists$/,
      ),
    );
    await assert.rejects(
      ids({ rank: { contain: 1 } }),
      refused(/args\.where\.rank\.contain: unknown key \(did you mean "contains"\?\)/),
    );
    await assert.rejects(
      ids({ rank: {} }),
      refused(/^computation "t": args\.where\.rank: give at least one operator: eq, ne/),
    );
    await assert.rejects(ids({ rank: { in: [] } }), refused(/args\.where\.rank\.in: needs at least one value/));
    await assert.rejects(
      ids({ rank: { exists: "yes" } }),
      refused(/args\.where\.rank\.exists: expected true or false, got "yes"/),
    );
    await assert.rejects(ids({ rank: { in: 1 } }), refused(/args\.where\.rank\.in: expected a list, got 1/));
    await assert.rejects(
      ids({ rank: { gt: [1] } }),
      refused(/args\.where\.rank\.gt: expected a number or a string, got a list/),
    );
    await assert.rejects(
      ids({ rank: [1] }),
      refused(
        /^computation "t": args\.where\.rank: expected a value to equal \(string, number or boolean\) or a mapping of operators/,
      ),
    );
    await assert.rejects(ids({ rank: null }), refused(/args\.where\.rank: expected a value to equal .* got null/));
    await assert.rejects(ids({ Rank: 1 }), refused(/args\.where\.Rank: "Rank" is not a name/));
    await assert.rejects(ids("rank"), refused(/args\.where: expected a mapping/));
  });

  it("refuses a field the type lacks", () => {
    assert.throws(
      () => compileWhere("x", "site", FIELDS, { colour: "red" }),
      refused(/^x: args\.where\.colour: type site has no field "colour"; its fields: id, name/, "args.where.colour"),
    );
  });

  it("handles __proto__ and constructor as field names safely", async () => {
    // An own __proto__ key (as JSON.parse makes it) is refused before parsing, not dropped.
    await assert.rejects(
      filtered.run(JSON.parse('{"where": {"__proto__": {"eq": 1}}}') as JsonObject, deps),
      refused(/^computation "t": args\.where\.__proto__: this name is reserved/),
    );
    // constructor is a valid name: undeclared, it is an unknown field, never Object.prototype's.
    assert.throws(
      () => compileWhere("x", "site", FIELDS, { constructor: { exists: true } }),
      refused(/args\.where\.constructor: type site has no field "constructor"/),
    );
    assert.throws(
      () => compileWhere("x", "site", FIELDS, JSON.parse('{"__proto__": 1}') as Record<string, number>),
      refused(/args\.where\.__proto__: type site has no field "__proto__"/),
    );
    // Declared, it reads the record's own value only: a record without one is missing.
    const fields = { ...FIELDS, constructor: "text", tostring: "text" };
    const withIt: JsonObject = { id: "z", constructor: "ctor" };
    const test = compileWhere("x", "site", fields, { constructor: { exists: true } });
    assert.deepEqual(
      [...RECORDS, withIt].filter(test).map((r) => r.id),
      ["z"],
    );
    const missing = compileWhere("x", "site", fields, { constructor: { ne: "ctor" } });
    assert.deepEqual(
      [...RECORDS, withIt].filter(missing).map((r) => r.id),
      ["a", "b", "c", "d", "e"],
    );
  });

  it("handles __proto__ and constructor as operator names safely", async () => {
    await assert.rejects(
      ids({ rank: { constructor: 1 } }),
      refused(/^computation "t": args\.where\.rank\.constructor: unknown key; expected one of eq/),
    );
    await assert.rejects(
      filtered.run(JSON.parse('{"where": {"rank": {"__proto__": 1}}}') as JsonObject, deps),
      refused(/args\.where\.rank\.__proto__: this name is reserved/),
    );
    // A caller skipping the schema still cannot reach Object.prototype members as operators.
    for (const op of ["constructor", "toString", "hasOwnProperty", "__proto__"])
      assert.throws(
        () => compileWhere("x", "site", FIELDS, JSON.parse(`{"rank": {"${op}": 1}}`) as never),
        refused(new RegExp(`args\\.where\\.rank\\.${op}: unknown operator; expected one of eq, ne`)),
        op,
      );
  });

  it("compiles once into a function that a scan calls per record", () => {
    const test = compileWhere("x", "site", FIELDS, { rank: { gte: 1, lte: 3 }, name: { prefix: "A" }, active: true });
    const records = Array.from({ length: 200_000 }, (_, i) => RECORDS[i % RECORDS.length]);
    let n = 0;
    for (const r of records) if (test(r)) n++;
    assert.equal(n, 40_000);
  });
});
