import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  coerceValue,
  compileJsonPath,
  compileSource,
  extractPage,
  extractRecords,
  formatByteSize,
  formatOf,
  isJsonPath,
  parseBody,
  parseByteSize,
  selectItems,
  compileValuePath,
  type ExtractSpec,
  type SourceDef,
} from "@machina/fetch";
import { MachinaError } from "@machina/wire";

// A source whose one query extracts with `extract`; compiled exactly as a source file would be.
function sourceWith(extract: Record<string, unknown>, query: Record<string, unknown> = {}): SourceDef {
  return compileSource(
    {
      name: "shop",
      limiter: "unlimited",
      manager: { type: "http", base_url: "http://127.0.0.1:1" },
      queries: { items: { path: "/items", extract, ...query } },
    },
    "sources/shop.yaml",
  );
}

const specsOf = (def: SourceDef): readonly ExtractSpec[] => def.queries.get("items")?.extract ?? [];

function refused(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof MachinaError, String(err));
    assert.equal(err.code, "BAD_REQUEST");
    assert.match(err.message, re);
    return true;
  });
}

describe("JSONPath selectors", () => {
  const body = {
    store: {
      items: [
        { sku: "a", price: 5, tags: ["x"], stock: { n: 3 } },
        { sku: "b", price: 15, tags: [], stock: { n: 0 } },
        { sku: "c", price: 25 },
      ],
      featured: { sku: "d", price: 1 },
    },
  };

  it("tells a JSONPath from a dot path by its `$.` or `$[` start", () => {
    assert.equal(isJsonPath("$.a"), true);
    assert.equal(isJsonPath("$[0]"), true);
    assert.equal(isJsonPath("$..a"), true);
    assert.equal(isJsonPath("$"), false);
    assert.equal(isJsonPath("."), false);
    assert.equal(isJsonPath("$ref.a"), false);
    assert.equal(isJsonPath("items"), false);
  });

  it("selects with filters, recursive descent, wildcards and slices", () => {
    const sel = (text: string) => selectItems(compileValuePath(text, "t"), body);
    assert.deepEqual(
      sel("$.store.items[?(@.price > 10)]").map((x) => (x as { sku: string }).sku),
      ["b", "c"],
    );
    assert.deepEqual(
      sel("$.store.items[?(@.stock.n > 0 && @.sku == 'a')]").map((x) => (x as { sku: string }).sku),
      ["a"],
    );
    // Recursive descent finds every match at any depth; the order it visits in is the library's.
    assert.deepEqual(
      sel("$..[?(@.price < 6)]")
        .map((x) => (x as { sku: string }).sku)
        .sort(),
      ["a", "d"],
    );
    assert.equal(sel("$.store.items[*]").length, 3);
    assert.equal(sel("$.store.items[1:]").length, 2);
    // A match that is a list is spread, as a dot path's list is.
    assert.equal(sel("$.store.items").length, 3);
    assert.deepEqual(sel("$.nothing"), []);
    assert.deepEqual(selectItems(compileValuePath("$.a", "t"), null), []);
  });

  it("refuses script expressions, calls and assignments when the source is compiled", () => {
    refused(() => compileJsonPath("$.items[(@.length-1)]", "q"), /script expression/);
    refused(() => compileJsonPath("$.items[?(@.name.toUpperCase() == 'A')]", "q"), /a function call in the filter/);
    refused(() => compileJsonPath("$.items[?(@.a = 1)]", "q"), /an assignment/);
    refused(() => compileJsonPath("$.items[?(@.constructor)]", "q"), /prototype name/);
    refused(() => compileJsonPath("$.items[?(`${1}`)]", "q"), /template string/);
    refused(() => compileJsonPath("$.items[0", "q"), /unbalanced/);
    // Code-like text inside a string literal is just text.
    assert.equal(compileJsonPath("$.items[?(@.name == 'f(x) = 1;')]", "q").definite, false);
    assert.equal(compileJsonPath("$.a.b[0]", "q").definite, true);
  });

  it("reports a refused JSONPath as a config error naming the place", () => {
    refused(
      () => sourceWith({ i: { type: "item", path: "$.items[(@.length-1)]" } }),
      /^sources\/shop\.yaml: queries\.items\.extract\.i\.path: JSONPath "\$\.items\[\(@\.length-1\)\]" has a script expression/,
    );
  });
});

describe("field mapping", () => {
  const def = sourceWith({
    items: {
      type: "item",
      path: "$.data[*]",
      fields: {
        sku: "id",
        name: { path: "info.title" },
        price: { path: "$.cost.amount", type: "float" },
        currency: { path: "meta.currency", from: "body" },
        origin: { const: "shop" },
        url: { template: "https://shop.example/{{record.id}}?for={{lead.user}}" },
        qty: { template: "{{record.qty}}", type: "int", default: 0 },
        tags: { path: "$.tags[*].name" },
        seen: { path: "when", type: "timestamp" },
      },
    },
  });
  const body = {
    meta: { currency: "EUR" },
    data: [
      {
        id: "a1",
        info: { title: "Apple" },
        cost: { amount: "1.25" },
        qty: "3",
        tags: [{ name: "fruit" }, { name: "red" }],
        when: 1_700_000_000_000,
      },
      { id: "b2", info: { title: "Bean" }, cost: { amount: 2 }, when: "2024-03-01T10:00:00Z" },
    ],
  };

  it("renames, reads nested paths, constants, templates and the body, and coerces types", () => {
    const out = extractRecords(body, specsOf(def), "shop", "items", { lead: { id: "u", args: { user: "ann" } } });
    assert.deepEqual(out.item, [
      {
        sku: "a1",
        name: "Apple",
        price: 1.25,
        currency: "EUR",
        origin: "shop",
        url: "https://shop.example/a1?for=ann",
        qty: 3,
        tags: ["fruit", "red"],
        seen: "2023-11-14T22:13:20.000Z",
      },
      {
        sku: "b2",
        name: "Bean",
        price: 2,
        currency: "EUR",
        origin: "shop",
        url: "https://shop.example/b2?for=ann",
        qty: 0,
        tags: [],
        seen: "2024-03-01T10:00:00.000Z",
      },
    ]);
  });

  it("leaves out a record whose field cannot be coerced, naming source, query, record and field", () => {
    const bad = { ...body, data: [body.data[0], { ...body.data[1], cost: { amount: "two" } }, body.data[1]] };
    const page = extractPage(bad, specsOf(def), "shop", "items", { page: 2, lead: { id: "u", args: { user: "x" } } });
    assert.deepEqual(
      page.records.item.map((r) => r.sku),
      ["a1", "b2"],
    );
    assert.equal(page.rejected.length, 1);
    const r = page.rejected[0];
    assert.equal(r.index, 1);
    assert.equal(r.field, "price");
    assert.equal(r.page, 2);
    assert.equal(r.error.code, "UPSTREAM");
    assert.equal(r.error.retryable, false);
    assert.equal(
      r.error.message,
      'query shop.items: extract items (type item): page 2, record 1: field "price" (from path "$.cost.amount"): "two" is not a finite number; fix the field\'s type in the mapping or check the upstream API',
    );
    assert.deepEqual(
      { ...r.error.details },
      {
        source: "shop",
        query: "items",
        extract: "items",
        type: "item",
        page: 2,
        record: 1,
        field: "price",
        from: 'path "$.cost.amount"',
      },
    );
    // The strict form fails the response with the same error.
    assert.throws(
      () => extractRecords(bad, specsOf(def), "shop", "items", { lead: { id: "u", args: { user: "x" } } }),
      /record 1: field "price"/,
    );
  });

  it("keeps unmapped fields on request, moving renamed ones", () => {
    const d = sourceWith({
      i: { type: "item", path: "items", fields: { sku: "id", n: { path: "n", type: "int" } }, keep_unmapped: true },
    });
    const out = extractRecords({ items: [{ id: "a", n: "7", extra: true }] }, specsOf(d), "shop", "items");
    assert.deepEqual(out.item, [{ sku: "a", n: 7, extra: true }]);
  });

  it("keeps the dot-path form and items as they are without fields", () => {
    const d = sourceWith({ i: { type: "item", path: "data.list" }, all: { type: "other", path: "." } });
    assert.deepEqual(specsOf(d)[0], { name: "i", type: "item", path: ["data", "list"] });
    const out = extractRecords({ data: { list: [{ a: 1 }] } }, specsOf(d), "shop", "items");
    assert.deepEqual(out, { item: [{ a: 1 }], other: [{ data: { list: [{ a: 1 }] } }] });
  });

  it("checks the mapping when the source is compiled", () => {
    refused(
      () => sourceWith({ i: { type: "item", path: "x", fields: { a: { path: "p", const: 1 } } } }),
      /fields\.a: give exactly one of path, const, template \(got path, const\)/,
    );
    refused(
      () => sourceWith({ i: { type: "item", path: "x", fields: { a: { const: "soon", type: "timestamp" } } } }),
      /fields\.a: "soon" is not a timestamp .*, the declared type of the field/,
    );
    refused(
      () => sourceWith({ i: { type: "item", path: "x", fields: { a: { template: "{{data.key}}" } } } }),
      /fields\.a\.template: placeholder \{\{data\.key\}\} must be \{\{record\.<field>\}\} or \{\{lead\.<field>\}\}/,
    );
    refused(
      () => sourceWith({ i: { type: "item", path: "x", fields: { a: { path: "p", type: "money" } } } }),
      /fields\.a\.type/,
    );
    refused(
      () => sourceWith({ i: { type: "item", path: "x", keep_unmapped: true } }),
      /keep_unmapped: only applies with fields/,
    );
    // Request templates still may not read records.
    refused(
      () => sourceWith({ i: { type: "item", path: "x" } }, { params: { q: "{{record.id}}" } }),
      /must be \{\{lead\.<field>\}\} or \{\{data\.<name>\}\}/,
    );
  });
});

describe("type coercion", () => {
  const ok = (type: Parameters<typeof coerceValue>[0], v: unknown) => {
    const c = coerceValue(type, v);
    assert.ok(c.ok, `${type} ${JSON.stringify(v)}: ${c.ok ? "" : c.problem}`);
    return c.value;
  };
  const problem = (type: Parameters<typeof coerceValue>[0], v: unknown) => {
    const c = coerceValue(type, v);
    assert.ok(!c.ok, `${type} ${JSON.stringify(v)} should fail`);
    return c.problem;
  };

  it("coerces to each declared type name", () => {
    assert.equal(ok("text", 12), "12");
    assert.equal(ok("int", " 42 "), 42);
    assert.equal(ok("bigint", "9223372036854775807"), "9223372036854775807");
    assert.equal(ok("bigint", "12"), 12);
    assert.equal(ok("float", "1.5"), 1.5);
    assert.equal(ok("double", 1e300), 1e300);
    assert.equal(ok("boolean", "TRUE"), true);
    assert.equal(ok("boolean", 0), false);
    assert.equal(ok("timestamp", "2024-01-01 10:00"), "2024-01-01T10:00:00.000Z");
    assert.equal(ok("timestamp", "2024-01-01T10:00:00+02:00"), "2024-01-01T08:00:00.000Z");
    assert.equal(ok("date", "2024-02-29"), "2024-02-29");
    assert.equal(ok("date", "2024-03-01T23:30:00-02:00"), "2024-03-02");
    assert.deepEqual(ok("json", { a: [1] }), { a: [1] });
    assert.equal(ok("int", null), null);
  });

  it("says what is wrong with a value", () => {
    assert.equal(problem("int", "12.5"), '"12.5" is not a 32-bit int');
    assert.equal(problem("int", 2 ** 31), "2147483648 is not a 32-bit int");
    assert.equal(problem("bigint", "9223372036854775808"), '"9223372036854775808" is not a 64-bit integer');
    assert.equal(problem("float", 1e39), "1e+39 is not within the range of a float");
    assert.equal(problem("boolean", "yes"), '"yes" is not a boolean (true, false, 1 or 0)');
    assert.match(problem("timestamp", "Dec 5"), /is not a timestamp/);
    assert.match(problem("timestamp", "2024-02-30T00:00Z"), /is not a timestamp/);
    assert.equal(problem("date", "2023-02-29"), '"2023-02-29" is not a date (no such day in the calendar)');
    assert.match(problem("text", { a: 1 }), /is not text/);
  });
});

describe("body limits and formats", () => {
  it("parses sizes in powers of 1024 and refuses a bare number", () => {
    assert.equal(parseByteSize("10MB"), 10 * 1024 * 1024);
    assert.equal(parseByteSize("512 KiB"), 512 * 1024);
    assert.equal(parseByteSize("1.5kb"), 1536);
    assert.equal(parseByteSize(1024), null);
    assert.equal(parseByteSize("10 parsecs"), null);
    assert.equal(formatByteSize(10 * 1024 * 1024), "10MB");
    assert.equal(formatByteSize(1500), "1500B");
    const def = sourceWith({ i: { type: "item", path: "x" } }, { max_body: "64KB", format: "ndjson" });
    assert.equal(def.queries.get("items")?.maxBodyBytes, 64 * 1024);
    assert.equal(def.queries.get("items")?.format, "ndjson");
    refused(
      () => sourceWith({ i: { type: "item", path: "x" } }, { max_body: 65536 }),
      /max_body: expected a size with a unit such as 512KB, 10MB or 1GB, got the bare number 65536/,
    );
    refused(() => sourceWith({ i: { type: "item", path: "x" } }, { max_body: "2GB" }), /must be from 1KB to 1GB/);
  });

  it("reads NDJSON as the list of its lines and picks it by content-type", () => {
    assert.deepEqual(parseBody('{"a":1}\n\n{"a":2}\r\n', "ndjson"), { ok: true, body: [{ a: 1 }, { a: 2 }] });
    assert.deepEqual(parseBody('{"a":1}\n{oops', "ndjson"), {
      ok: false,
      problem: "an NDJSON body whose line 2 is not JSON",
    });
    assert.deepEqual(parseBody("\ufeff[1]", "json"), { ok: true, body: [1] });
    assert.deepEqual(parseBody("  ", "json"), { ok: true, body: null });
    assert.equal(formatOf("auto", "application/x-ndjson; charset=utf-8"), "ndjson");
    assert.equal(formatOf("auto", "application/json"), "json");
    assert.equal(formatOf("json", "application/x-ndjson"), "json");
    assert.equal(formatOf("ndjson", null), "ndjson");
  });
});
