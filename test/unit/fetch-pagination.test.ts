// Pure parts of pagination: RFC 8288 Link headers, next URLs kept on the source's host, the
// paginate schema's errors, and how a page walk decides what comes next and when to stop.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  asProgress,
  compileSource,
  firstProgress,
  linkTarget,
  parseLinkHeader,
  relationsOf,
  resolveNextUrl,
  startWalk,
  type HttpRequest,
  type PaginateSpec,
  type WalkScope,
} from "@machina/fetch";
import { MachinaError } from "@machina/wire";

describe("Link header (RFC 8288)", () => {
  it("parses targets and parameters, quoted or not, across joined header lines", () => {
    const links = parseLinkHeader(
      '<https://api.example.com/items?page=2&x=a,b>; rel="next"; title="Next, please", <https://api.example.com/items?page=9>;rel=last , </items?page=1>; REL="first prev"; rel="ignored"',
    );
    assert.deepEqual(
      links.map((l) => l.target),
      ["https://api.example.com/items?page=2&x=a,b", "https://api.example.com/items?page=9", "/items?page=1"],
    );
    assert.equal(links[0].params.get("title"), "Next, please");
    assert.deepEqual(relationsOf(links[1]), ["last"]);
    // Parameter names are case-insensitive, and only the first `rel` counts.
    assert.deepEqual(relationsOf(links[2]), ["first", "prev"]);
  });

  it("finds the next target among several relations, in any case", () => {
    assert.equal(
      linkTarget('<https://h/a?page=1>; rel="prev", <https://h/a?page=3>; rel="Next last"'),
      "https://h/a?page=3",
    );
    assert.equal(linkTarget('<https://h/a?page=3>; rel="prev"'), null);
    assert.equal(linkTarget(null), null);
    assert.equal(linkTarget("   "), null);
  });

  it("skips malformed elements instead of failing the header", () => {
    assert.equal(linkTarget('garbage; rel="next", <https://h/ok>; rel="next"'), "https://h/ok");
    assert.equal(linkTarget('<https://h/a>; rel="ne\\"xt", <https://h/b>; rel=next'), "https://h/b");
    assert.deepEqual(parseLinkHeader("<https://h/unclosed; rel=next"), []);
    assert.deepEqual(parseLinkHeader('<https://h/x>; rel="next'), [
      { target: "https://h/x", params: new Map([["rel", "next"]]) },
    ]);
  });
});

describe("next page URLs", () => {
  const scope = {
    source: "pages",
    query: "items",
    origin: "sources/pages.yaml",
    baseUrl: "http://127.0.0.1:8080/api",
    authParam: "api_key",
    from: "response path links.next",
  };

  it("resolves relative URLs against the page they came from and keeps absolute ones on the host", () => {
    const current = "http://127.0.0.1:8080/api/items?page=1";
    assert.equal(resolveNextUrl("?page=2", current, scope), "http://127.0.0.1:8080/api/items?page=2");
    assert.equal(resolveNextUrl("items?page=3", current, scope), "http://127.0.0.1:8080/api/items?page=3");
    assert.equal(resolveNextUrl("/v2/items?c=x#frag", current, scope), "http://127.0.0.1:8080/v2/items?c=x");
    assert.equal(
      resolveNextUrl("http://127.0.0.1:8080/api/items?page=4", current, scope),
      "http://127.0.0.1:8080/api/items?page=4",
    );
  });

  it("drops an echoed api key, so stored progress holds no secret", () => {
    assert.equal(
      resolveNextUrl("/api/items?page=2&api_key=s3cret", "http://127.0.0.1:8080/api/items", scope),
      "http://127.0.0.1:8080/api/items?page=2",
    );
  });

  it("refuses another host, port or scheme, naming only the origin", () => {
    for (const [url, where] of [
      ["https://evil.example/steal?api_key=s3cret", "https://evil.example"],
      ["http://127.0.0.1:9999/api/items", "http://127.0.0.1:9999"],
      ["https://127.0.0.1:8080/api/items", "https://127.0.0.1:8080"],
      ["//evil.example/x", "http://evil.example"],
      ["javascript:alert(1)", "javascript:"],
    ]) {
      assert.throws(
        () => resolveNextUrl(url, "http://127.0.0.1:8080/api/items", scope),
        (err: unknown) => {
          assert.ok(err instanceof MachinaError);
          assert.equal(err.code, "UPSTREAM");
          assert.equal(err.retryable, false);
          assert.ok(err.message.includes(`points at ${where}, not http://127.0.0.1:8080`), err.message);
          assert.ok(!err.message.includes("s3cret"), err.message);
          return true;
        },
      );
    }
    assert.throws(
      () => resolveNextUrl("http://u:p@127.0.0.1:8080/api", "http://127.0.0.1:8080/api", scope),
      /carries user credentials/,
    );
  });
});

function source(paginate: Record<string, unknown>, params: Record<string, string> = {}) {
  return {
    name: "pages",
    limiter: "unlimited",
    manager: { type: "http", base_url: "http://127.0.0.1:8080" },
    queries: { items: { path: "/items", params, paginate, extract: { items: { type: "item", path: "items" } } } },
  };
}

function compileError(paginate: Record<string, unknown>, params: Record<string, string> = {}): string {
  try {
    compileSource(source(paginate, params), "sources/pages.yaml");
  } catch (err) {
    return (err as Error).message;
  }
  return assert.fail("expected a compile error");
}

function specOf(paginate: Record<string, unknown>): PaginateSpec {
  const def = compileSource(source(paginate), "sources/pages.yaml");
  const spec = def.queries.get("items")?.paginate;
  assert.ok(spec);
  return spec;
}

describe("paginate schema", () => {
  it("compiles every kind with its defaults", () => {
    assert.deepEqual(specOf({ type: "offset", param: "offset", limit: 50, limit_param: "limit" }), {
      type: "offset",
      param: "offset",
      start: 0,
      limit: 50,
      limitParam: "limit",
      maxPages: 100,
      stopOnEmpty: true,
      totalItems: null,
      totalPages: null,
    });
    assert.deepEqual(specOf({ type: "next_url", next: "links.next", total_items: "meta.total", max_pages: 5 }), {
      type: "next_url",
      next: ["links", "next"],
      maxPages: 5,
      stopOnEmpty: true,
      totalItems: ["meta", "total"],
      totalPages: null,
    });
    assert.equal(specOf({ type: "link_header", stop_on_empty: false }).stopOnEmpty, false);
    assert.deepEqual(specOf({ type: "header_cursor", param: "cursor", header: "X-Next-Cursor" }), {
      type: "header_cursor",
      param: "cursor",
      header: "X-Next-Cursor",
      maxPages: 100,
      stopOnEmpty: true,
      totalItems: null,
      totalPages: null,
    });
  });

  it("names the file and field of every mistake", () => {
    const at = "sources/pages.yaml: queries.items.paginate";
    assert.equal(
      compileError({ type: "offset", param: "offset" }),
      `${at}.limit: is required for offset pagination (the page size the offset grows by)`,
    );
    assert.equal(
      compileError({ type: "next_url" }),
      `${at}.next: is required for next_url pagination (the response path of the next page)`,
    );
    assert.equal(
      compileError({ type: "header_cursor", param: "c" }),
      `${at}.header: is required for header_cursor pagination (the response header holding the next cursor)`,
    );
    assert.equal(
      compileError({ type: "link_header", param: "page" }),
      `${at}.param: only applies to page, offset, cursor or header_cursor pagination, not link_header; remove it`,
    );
    assert.equal(
      compileError({ type: "cursor", param: "c", next: "n", start: 2 }),
      `${at}.start: only applies to page or offset pagination, not cursor; remove it`,
    );
    assert.match(
      compileError({ type: "page", param: "page", stop_on_empty: false }),
      /paginate\.stop_on_empty: page pagination then never learns it reached the last page/,
    );
    assert.match(
      compileError({ type: "offset", param: "o", limit: 5, limit_param: "o" }),
      /paginate\.limit_param: must differ from param/,
    );
    assert.match(
      compileError({ type: "header_cursor", param: "c", header: "bad header" }),
      /paginate\.header: must be an HTTP header name/,
    );
    assert.match(
      compileError({ type: "page", param: "page", max_page: 3 }),
      /paginate\.max_page: unknown key \(did you mean "max_pages"\?\)/,
    );
    assert.equal(
      compileError({ type: "offset", param: "o", limit: 5, limit_param: "n" }, { n: "10" }),
      "sources/pages.yaml: queries.items.params.n: is set by paginate; remove it from params",
    );
  });
});

describe("page walk", () => {
  const scope: WalkScope = {
    source: "pages",
    query: "items",
    origin: "sources/pages.yaml",
    baseUrl: "http://127.0.0.1:8080",
    authParam: null,
  };
  const base: HttpRequest = { query: "items", method: "GET", path: "/items", params: { q: "x" }, headers: {} };
  const answer = (request: HttpRequest, body: unknown, records: number, headers: Record<string, string> = {}) => ({
    request,
    body,
    headers: new Headers(headers),
    records,
    end: 1000,
  });

  it("counts pages up, carrying the query's own params, until an empty page", () => {
    const walk = startWalk(specOf({ type: "page", param: "page", start: 0 }), scope, null);
    const r1 = walk.request(base);
    assert.deepEqual(r1.params, { q: "x", page: "0" });
    const s1 = walk.advance(answer(r1, {}, 3));
    assert.deepEqual(s1.next?.next, { kind: "params", params: { page: "1" } });
    assert.deepEqual([s1.page, s1.next?.pages, s1.next?.items], [1, 1, 3]);
    const r2 = walk.request(base);
    assert.deepEqual(r2.params, { q: "x", page: "1" });
    const s2 = walk.advance(answer(r2, {}, 0));
    assert.deepEqual([s2.page, s2.next, s2.truncated], [2, null, false]);
  });

  it("stamps every page later than the one before, even within one millisecond", () => {
    const walk = startWalk(specOf({ type: "page", param: "page" }), scope, null);
    const s1 = walk.advance(answer(walk.request(base), {}, 1));
    const s2 = walk.advance(answer(walk.request(base), {}, 1));
    assert.deepEqual([s1.end, s2.end], [1000, 1001]);
  });

  it("grows an offset by limit and stops when it reaches the total", () => {
    const walk = startWalk(specOf({ type: "offset", param: "offset", limit: 10, total_items: "total" }), scope, null);
    const seen: string[] = [];
    for (;;) {
      const r = walk.request(base);
      seen.push(r.params.offset);
      const s = walk.advance(answer(r, { total: "25" }, 10));
      if (s.next === null) break;
    }
    assert.deepEqual(seen, ["0", "10", "20"]);
  });

  it("stops at total_items or total_pages, and at max_pages with truncated set", () => {
    const byItems = startWalk(specOf({ type: "cursor", param: "c", next: "n", total_items: "t" }), scope, null);
    assert.notEqual(byItems.advance(answer(byItems.request(base), { n: "a", t: 5 }, 3)).next, null);
    assert.equal(byItems.advance(answer(byItems.request(base), { n: "b", t: 5 }, 3)).next, null);
    const byPages = startWalk(specOf({ type: "cursor", param: "c", next: "n", total_pages: "p" }), scope, null);
    assert.notEqual(byPages.advance(answer(byPages.request(base), { n: "a", p: "2" }, 1)).next, null);
    assert.equal(byPages.advance(answer(byPages.request(base), { n: "b", p: "2" }, 1)).next, null);
    const capped = startWalk(specOf({ type: "cursor", param: "c", next: "n", max_pages: 2 }), scope, null);
    assert.equal(capped.advance(answer(capped.request(base), { n: "a" }, 1)).truncated, false);
    const last = capped.advance(answer(capped.request(base), { n: "b" }, 1));
    assert.deepEqual([last.next, last.truncated], [null, true]);
  });

  it("keeps paging past an empty page when stop_on_empty is off", () => {
    const walk = startWalk(specOf({ type: "cursor", param: "c", next: "n", stop_on_empty: false }), scope, null);
    assert.notEqual(walk.advance(answer(walk.request(base), { n: "a" }, 0)).next, null);
    assert.equal(walk.request(base).params.c, "a");
  });

  it("replaces path and params with a next URL, and reads the Link header and cursor headers", () => {
    const byUrl = startWalk(specOf({ type: "next_url", next: "links.next" }), scope, null);
    byUrl.advance(answer(byUrl.request(base), { links: { next: "/items?after=9&q=x" } }, 1));
    const r = byUrl.request(base);
    assert.deepEqual([r.url, r.path, r.params], ["http://127.0.0.1:8080/items?after=9&q=x", "/items", {}]);
    const byLink = startWalk(specOf({ type: "link_header" }), scope, null);
    const s = byLink.advance(answer(byLink.request(base), {}, 1, { link: '</items?page=2>; rel="next"' }));
    assert.deepEqual(s.next?.next, { kind: "url", url: "http://127.0.0.1:8080/items?page=2" });
    const byHeader = startWalk(specOf({ type: "header_cursor", param: "c", header: "X-Next" }), scope, null);
    byHeader.advance(answer(byHeader.request(base), {}, 1, { "x-next": " abc " }));
    assert.equal(byHeader.request(base).params.c, "abc");
    assert.equal(byHeader.advance(answer(byHeader.request(base), {}, 1)).next, null);
  });

  it("refuses a loop", () => {
    const walk = startWalk(specOf({ type: "cursor", param: "c", next: "n" }), scope, null);
    walk.advance(answer(walk.request(base), { n: "a" }, 1));
    assert.throws(
      () => walk.advance(answer(walk.request(base), { n: "a" }, 1)),
      /pagination loops \(page 2 names a next page that was already fetched: c=a\)/,
    );
  });

  it("resumes from stored progress and checks what it reads back", () => {
    const spec = specOf({ type: "page", param: "page", max_pages: 4 });
    const resume = { next: { kind: "params" as const, params: { page: "4" } }, pages: 3, items: 30, lastEnd: 5000 };
    const walk = startWalk(spec, scope, resume);
    assert.equal(walk.request(base).params.page, "4");
    const s = walk.advance(answer(walk.request(base), {}, 10));
    assert.deepEqual([s.page, s.end, s.next, s.truncated], [4, 5001, null, true]);
    assert.deepEqual(asProgress(JSON.parse(JSON.stringify(resume))), resume);
    assert.deepEqual(asProgress(firstProgress(spec)), firstProgress(spec));
    for (const bad of [
      null,
      3,
      { ...resume, pages: -1 },
      { ...resume, next: { kind: "url" } },
      { ...resume, next: { kind: "params", params: { a: 1 } } },
    ])
      assert.equal(asProgress(bad), null);
  });
});
