// Incremental queries as a source file declares them: the `incremental` schema (defaults, every
// mistake named by file and field), where `{{incremental.value}}` may appear, how cursor values
// compare, and the marks an answer carries to the data service.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  answerMark,
  compileSource,
  cursorKey,
  cursorOrder,
  expectMark,
  incrementalOutcome,
  pageMark,
  renderRequest,
  tallyOf,
  tallyPage,
  type IncrementalSpec,
} from "@machina/fetch";
import { cursorMarkOf } from "@machina/data";
import { MachinaError } from "@machina/wire";

const ORIGIN = "sources/feed.yaml";

// Tests reach into nested fields freely to break one thing at a time.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function source(query: Record<string, any>, extra: Record<string, any> = {}): Record<string, any> {
  return {
    name: "feed",
    limiter: "unlimited",
    manager: { type: "http", base_url: "https://api.example.com" },
    queries: { changes: query },
    ...extra,
  };
}

const changes = (incremental: Record<string, unknown> | undefined, params: Record<string, string> = {}) => ({
  path: "/changes",
  params: { since: "{{incremental.value}}", ...params },
  ...(incremental === undefined ? {} : { incremental }),
  extract: { items: { type: "website", path: "items" } },
});

function compileError(raw: unknown): string {
  try {
    compileSource(raw, ORIGIN);
  } catch (err) {
    assert.ok(err instanceof MachinaError, `expected MachinaError, got ${String(err)}`);
    assert.equal(err.code, "BAD_REQUEST");
    return err.message;
  }
  return assert.fail("compileSource accepted an invalid source");
}

function specOf(incremental: Record<string, unknown>): IncrementalSpec {
  const q = compileSource(source(changes(incremental)), ORIGIN).queries.get("changes");
  assert.ok(q?.incremental);
  return q.incremental;
}

describe("incremental schema", () => {
  it("compiles with its defaults: the only extracted type, timestamp order", () => {
    assert.deepEqual(specOf({ field: "updated_at", initial: "2024-01-01T00:00:00Z" }), {
      field: "updated_at",
      type: "website",
      kind: "timestamp",
      initial: "2024-01-01T00:00:00Z",
      initialOrder: Date.UTC(2024, 0, 1),
    });
    assert.deepEqual(specOf({ field: "seq", initial: 0, compare: "number" }).initialOrder, 0);
    assert.equal(specOf({ field: "id", initial: "01H", compare: "text" }).initialOrder, "01H");
    assert.equal(
      compileSource(source(changes(undefined, { since: "x" })), ORIGIN).queries.get("changes")?.incremental,
      undefined,
    );
  });

  it("renders {{incremental.value}} in path, params and body like any placeholder", () => {
    const raw = source({
      method: "POST",
      path: "/changes/{{incremental.value}}",
      params: { since: "{{incremental.value}}" },
      body: { after: "{{incremental.value}}", page: 1 },
      incremental: { field: "seq", initial: 0, compare: "number" },
      extract: { items: { type: "website", path: "items" } },
    });
    const q = compileSource(raw, ORIGIN).queries.get("changes")!;
    const req = renderRequest(q, {
      source: "feed",
      query: "changes",
      lead: { id: "l", args: {} },
      data: {},
      incremental: { value: 41 },
    });
    assert.equal(req.path, "/changes/41");
    assert.deepEqual(req.params, { since: "41" });
    // One placeholder keeps the value's type in a body.
    assert.deepEqual(req.body, { after: 41, page: 1 });
  });

  it("names the file and field of every mistake", () => {
    const at = `${ORIGIN}: queries.changes.incremental`;
    assert.equal(
      compileError(source(changes({ field: "updated_at", initial: "yesterday" }))),
      `${at}.initial: expected an ISO 8601 timestamp such as 2024-01-01T00:00:00Z, got "yesterday"`,
    );
    assert.match(
      compileError(source(changes({ field: "updated_at", initial: 1700000000 }))),
      /incremental\.initial: expected an ISO 8601 timestamp .*got number \(for epoch numbers write compare: number\)/,
    );
    assert.match(compileError(source(changes({ initial: "2024-01-01" }))), /incremental\.field: /);
    assert.match(
      compileError(source(changes({ field: "updated_at", initial: "2024-01-01", compare: "date" }))),
      /incremental\.compare: /,
    );
    assert.match(
      compileError(source(changes({ field: "updated_at", initial: "2024-01-01", type: "business" }))),
      /incremental\.type: the query extracts no business records \(it extracts website\), so its cursor would never move/,
    );
    const two = changes({ field: "updated_at", initial: "2024-01-01" });
    two.extract = { ...two.extract, owners: { type: "business", path: "owners" } } as typeof two.extract;
    assert.match(
      compileError(source(two)),
      /incremental\.type: is required: the query extracts website, business; name the one whose records carry updated_at/,
    );
    assert.match(
      compileError(source(changes({ field: "updated_at", initial: "2024-01-01", since: "x" }))),
      /incremental\.since: unknown key/,
    );
  });

  it("allows {{incremental.value}} only in the request of an incremental query that uses it", () => {
    assert.equal(
      compileError(source(changes(undefined))),
      `${ORIGIN}: queries.changes.params.since: {{incremental.value}} needs the query to declare incremental (field, initial)`,
    );
    const inHeaders = source(changes({ field: "updated_at", initial: "2024-01-01" }));
    inHeaders.manager.headers = { "X-Since": "{{incremental.value}}" };
    assert.equal(
      compileError(inHeaders),
      `${ORIGIN}: manager.headers.X-Since: {{incremental.value}} may only be used in a query's path, params, headers or body`,
    );
    const inAuth = source(changes({ field: "updated_at", initial: "2024-01-01" }), {
      manager: {
        type: "http-auth",
        base_url: "https://api.example.com",
        auth: { type: "bearer", token: "{{incremental.value}}" },
      },
    });
    assert.match(
      compileError(inAuth),
      /manager\.auth\.token: credentials may only use \{\{data\.<name>\}\} placeholders, not the cursor/,
    );
    const unused = changes({ field: "updated_at", initial: "2024-01-01" });
    unused.params = {} as typeof unused.params;
    assert.match(
      compileError(source(unused)),
      /queries\.changes\.incremental: no template of the query reads \{\{incremental\.value\}\}, so every fetch would ask for everything/,
    );
    const other = changes({ field: "updated_at", initial: "2024-01-01" });
    other.params = { since: "{{incremental.start}}" };
    assert.match(
      compileError(source(other)),
      /placeholder \{\{incremental\.start\}\}: the cursor has one value, write \{\{incremental\.value\}\}/,
    );
  });
});

describe("cursor values", () => {
  it("orders timestamps by instant, numbers by value, text by code units", () => {
    // The same instant in two zones; a later one with fewer fraction digits.
    assert.equal(
      cursorOrder("timestamp", "2024-05-01T02:00:00+02:00"),
      cursorOrder("timestamp", "2024-05-01T00:00:00Z"),
    );
    assert.ok(
      (cursorOrder("timestamp", "2024-05-01T00:00:01Z") as number) >
        (cursorOrder("timestamp", "2024-05-01T00:00:00.999Z") as number),
    );
    assert.equal(cursorOrder("timestamp", "May 1"), null, "only ISO 8601 text is a timestamp");
    assert.equal(cursorOrder("number", "10"), 10);
    assert.ok((cursorOrder("number", 10) as number) > (cursorOrder("number", "9") as number));
    assert.equal(cursorOrder("number", "ten"), null);
    assert.ok((cursorOrder("text", "01HB") as string) > (cursorOrder("text", "01HA") as string));
  });

  it("takes the greatest value of the field among the answer's records of the type", () => {
    const spec = specOf({ field: "updated_at", initial: "2024-01-01T00:00:00Z" });
    const o = incrementalOutcome(spec, "2024-01-01T00:00:00Z", {
      website: [
        { updated_at: "2024-03-01T00:00:00Z" },
        { updated_at: "2024-04-01T00:00:00+02:00" },
        { updated_at: null },
        { updated_at: "not a time" },
        {},
      ],
      business: [{ updated_at: "2030-01-01T00:00:00Z" }],
    });
    assert.deepEqual(o, {
      since: "2024-01-01T00:00:00Z",
      type: "website",
      total: 5,
      best: { value: "2024-04-01T00:00:00+02:00", order: Date.UTC(2024, 2, 31, 22) },
    });
    assert.equal(incrementalOutcome(spec, "x", { website: [{}] }).best, null);
  });
});

describe("cursor marks", () => {
  const spec = specOf({ field: "updated_at", initial: "2024-01-01T00:00:00Z" });
  const scope = { source: "feed", query: "changes", lead: "news", task: "t@1/news" };
  const page = (dates: string[]) =>
    incrementalOutcome(spec, "2024-01-01T00:00:00Z", { website: dates.map((d) => ({ updated_at: d })) });

  it("a one-request answer carries what it expects; the data service reads it back", () => {
    const mark = answerMark(page(["2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"]), scope)!;
    assert.deepEqual(mark, {
      key: cursorKey("feed", "changes", "news"),
      source: "feed",
      query: "changes",
      lead: "news",
      type: "website",
      task: "t@1/news",
      since: "2024-01-01T00:00:00Z",
      page: 1,
      total: 2,
      expect: { pages: { "1": 2 }, value: "2024-03-01T00:00:00Z", order: Date.UTC(2024, 2, 1) },
    });
    assert.deepEqual(cursorMarkOf(mark), mark);
    assert.equal(answerMark(page([]), scope), null, "no records: nothing to move to");
    assert.match(String(cursorMarkOf({ ...mark, total: -1 })), /total is not a count/);
    assert.match(String(cursorMarkOf({ ...mark, expect: { pages: { one: 1 }, value: 1, order: 1 } })), /expect/);
  });

  it("a paginated task counts each page once and closes with every page's count", () => {
    let t = tallyPage(null, 1, page(["2024-02-01T00:00:00Z", "2024-05-01T00:00:00Z"]));
    t = tallyPage(t, 2, page(["2024-03-01T00:00:00Z"]));
    // A replayed page changes nothing; an empty last page adds no count.
    t = tallyPage(t, 2, page(["2024-03-01T00:00:00Z"]));
    t = tallyPage(t, 3, page([]));
    assert.deepEqual(t.counts, { "1": 2, "2": 1 });
    assert.deepEqual(t.best, { value: "2024-05-01T00:00:00Z", order: Date.UTC(2024, 4, 1) });
    assert.deepEqual(tallyOf(JSON.parse(JSON.stringify(t))), t, "kept in page progress as JSON");
    assert.equal(tallyOf({ ...t, counts: { "1": 0 } }), null);
    const mark = pageMark(page(["2024-03-01T00:00:00Z"]), 2, scope)!;
    assert.deepEqual([mark.page, mark.total, mark.expect], [2, 1, undefined]);
    assert.equal(pageMark(page([]), 3, scope), null);
    const closing = expectMark(t, scope)!;
    assert.deepEqual([closing.page, closing.total], [0, 0]);
    assert.deepEqual(closing.expect, {
      pages: { "1": 2, "2": 1 },
      value: "2024-05-01T00:00:00Z",
      order: Date.UTC(2024, 4, 1),
    });
    assert.equal(typeof cursorMarkOf(closing), "object");
  });
});
