import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compileSource, type SourceDef } from "@machina/fetch";
import { MachinaError } from "@machina/wire";

const ORIGIN = "sources/sitestats.yaml";

// Tests reach into nested fields freely to break one thing at a time.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function sample(): Record<string, any> {
  return {
    name: "sitestats",
    limiter: {
      windows: [
        { limit: 10, per: "1s" },
        { limit: 5000, per: "1d", align: "clock" },
      ],
    },
    data: { api_key: { env: "SITESTATS_API_KEY" } },
    manager: {
      type: "http-auth",
      base_url: "http://127.0.0.1:8787/",
      timeout: "10s",
      auth: { type: "api_key", header: "X-Api-Key", value: "{{data.api_key}}" },
      retries: { max: 3, base_delay: "200ms" },
    },
    queries: {
      site: {
        method: "GET",
        path: "/v1/sites/{{lead.domain}}",
        params: {},
        headers: {},
        extract: { site: { type: "website", path: "site" } },
      },
      sites: {
        method: "GET",
        path: "/v1/sites",
        params: { per_page: "50" },
        paginate: { type: "page", param: "page", next: "next_page", max_pages: 20 },
        extract: { items: { type: "website", path: "items" } },
      },
    },
  };
}

function compileError(raw: unknown, origin = ORIGIN): MachinaError {
  try {
    compileSource(raw, origin);
  } catch (err) {
    assert.ok(err instanceof MachinaError, `expected MachinaError, got ${String(err)}`);
    assert.equal(err.code, "BAD_REQUEST");
    assert.equal(err.retryable, false);
    return err;
  }
  assert.fail("compileSource accepted an invalid source");
}

describe("compileSource", () => {
  it("refuses an unknown window alignment, naming the field", () => {
    const raw = sample();
    (raw.limiter as { windows: unknown[] }).windows = [{ limit: 1, per: "1s", align: "sliding" }];
    const err = compileError(raw);
    assert.match(err.message, /limiter\.windows\[0\]\.align: expected one of rolling, clock/);
  });

  it("compiles the documented example", () => {
    const def: SourceDef = compileSource(sample(), ORIGIN);
    assert.equal(def.name, "sitestats");
    assert.deepEqual(def.limiter, {
      kind: "windows",
      windows: [
        { limit: 10, perMs: 1000, align: "rolling" },
        { limit: 5000, perMs: 86_400_000, align: "clock" },
      ],
    });
    assert.deepEqual(def.data.api_key, { kind: "env", name: "SITESTATS_API_KEY" });
    assert.equal(def.manager.baseUrl, "http://127.0.0.1:8787");
    assert.equal(def.manager.timeoutMs, 10_000);
    assert.deepEqual(def.manager.retries, { max: 3, baseDelayMs: 200, maxDelayMs: 10_000 });
    assert.equal(def.queries.get("site")!.path.refs[0].scope, "lead");
    assert.deepEqual(def.queries.get("site")!.extract, [{ name: "site", type: "website", path: ["site"] }]);
    assert.deepEqual(def.queries.get("sites")!.paginate, {
      type: "page",
      param: "page",
      next: ["next_page"],
      start: 1,
      maxPages: 20,
      stopOnEmpty: true,
      totalItems: null,
      totalPages: null,
    });
  });

  it("accepts limiter: unlimited, http without auth and defaults", () => {
    const raw = sample();
    raw.limiter = "unlimited";
    raw.manager = { type: "http", base_url: "https://api.example.com" };
    delete raw.data;
    raw.queries = { q: { path: "/x", extract: { all: { type: "thing", path: "." } } } };
    const def = compileSource(raw, ORIGIN);
    assert.deepEqual(def.limiter, { kind: "unlimited" });
    assert.equal(def.manager.auth, null);
    assert.equal(def.queries.get("q")!.method, "GET");
    assert.deepEqual(def.queries.get("q")!.extract[0].path, []);
  });

  it("names the file and field path of a bad method", () => {
    const raw = sample();
    raw.queries.site.method = "GTE";
    assert.equal(
      compileError(raw).message,
      'sources/sitestats.yaml: queries.site.method: expected one of GET, POST, PUT, DELETE, got "GTE"',
    );
  });

  it("rejects unknown keys and suggests the intended one", () => {
    const raw = sample();
    raw.queries.site.extarct = raw.queries.site.extract;
    delete raw.queries.site.extract;
    const e = compileError(raw);
    assert.match(
      e.message,
      /^sources\/sitestats\.yaml: queries\.site\.extarct: unknown key \(did you mean "extract"\?\)/,
    );
    const raw2 = sample();
    raw2.manager.timout = "5s";
    assert.match(compileError(raw2).message, /manager\.timout: unknown key \(did you mean "timeout"\?\)/);
    const raw3 = sample();
    raw3.extra = 1;
    assert.match(compileError(raw3).message, /^sources\/sitestats\.yaml: extra: unknown key/);
  });

  it("reports missing required fields", () => {
    const raw = sample();
    delete raw.queries.site.path;
    assert.equal(compileError(raw).message, "sources/sitestats.yaml: queries.site.path: is required");
    const raw2 = sample();
    delete raw2.manager.auth;
    assert.match(compileError(raw2).message, /manager\.auth: is required when manager\.type is http-auth/);
  });

  it("rejects bad durations and limits with the window index", () => {
    const raw = sample();
    raw.limiter.windows[1].per = "1 day";
    assert.equal(
      compileError(raw).message,
      'sources/sitestats.yaml: limiter.windows[1].per: expected a duration such as 250ms, 1s, 15m, 1h or 1d, got "1 day"',
    );
    for (const bad of [1000, "1h30m"]) {
      const r = sample();
      r.limiter.windows[0].per = bad;
      assert.match(compileError(r).message, /limiter\.windows\[0\]\.per: expected a duration/, String(bad));
    }
    const zero = sample();
    zero.limiter.windows[0].per = "0s";
    assert.match(compileError(zero).message, /limiter\.windows\[0\]\.per: must be at least 1ms, got "0s"/);
    const raw2 = sample();
    raw2.limiter.windows[0].limit = 0;
    assert.match(compileError(raw2).message, /limiter\.windows\[0\]\.limit: expected an integer >= 1, got 0/);
    const raw3 = sample();
    raw3.limiter = {
      windows: [
        { limit: 1, per: "1s" },
        { limit: 2, per: "1000ms" },
      ],
    };
    assert.match(compileError(raw3).message, /limiter\.windows\[1\]\.per: two windows have the same length/);
    const raw4 = sample();
    raw4.limiter = "unlimted";
    assert.match(compileError(raw4).message, /limiter: expected "unlimited" or a mapping/);
  });

  it("checks placeholders and data references", () => {
    const raw = sample();
    raw.queries.site.path = "/v1/sites/{{leed.domain}}";
    assert.match(
      compileError(raw).message,
      /queries\.site\.path: placeholder \{\{leed\.domain\}\} must be \{\{lead\.<field>\}\} or \{\{data\.<name>\}\}/,
    );
    const raw2 = sample();
    raw2.manager.auth.value = "{{data.apikey}}";
    assert.match(
      compileError(raw2).message,
      /manager\.auth\.value: \{\{data\.apikey\}\} is not declared under data \(declared: api_key\)/,
    );
    const raw3 = sample();
    raw3.manager.auth.value = "{{lead.key}}";
    assert.match(compileError(raw3).message, /manager\.auth\.value: credentials may only use \{\{data\.<name>\}\}/);
    const raw4 = sample();
    raw4.queries.site.path = "/v1/sites/{{lead.domain}";
    assert.match(compileError(raw4).message, /queries\.site\.path: unbalanced/);
  });

  it("validates data entries", () => {
    const raw = sample();
    raw.data.api_key = { env: "A", file: "/x" };
    assert.match(
      compileError(raw).message,
      /data\.api_key: give exactly one of env, file, value, row \(got env, file\)/,
    );
    const raw2 = sample();
    raw2.data.api_key = { secret: "x" };
    assert.match(compileError(raw2).message, /data\.api_key\.secret: unknown key/);
  });

  it("validates the manager", () => {
    const raw = sample();
    raw.manager.base_url = "127.0.0.1:8787";
    assert.match(compileError(raw).message, /manager\.base_url: /);
    const raw2 = sample();
    raw2.manager.type = "http";
    assert.match(compileError(raw2).message, /manager\.auth: is only allowed with manager\.type http-auth/);
    const raw3 = sample();
    raw3.manager.auth = { type: "api_key", value: "{{data.api_key}}" };
    assert.match(compileError(raw3).message, /manager\.auth: api_key needs exactly one of header/);
    const raw4 = sample();
    raw4.manager.auth = { type: "oauth", token: "x" };
    assert.match(
      compileError(raw4).message,
      /manager\.auth\.type: expected one of api_key, bearer, basic, oauth2, got "oauth"/,
    );
    const raw5 = sample();
    raw5.manager.auth = { type: "bearer", token: "{{data.api_key}}", header: "X" };
    assert.match(compileError(raw5).message, /manager\.auth\.header: unknown key/);
  });

  it("validates queries, pagination and extraction", () => {
    const raw = sample();
    raw.queries.site.path = "v1/sites";
    assert.match(compileError(raw).message, /queries\.site\.path: must start with "\/"/);
    const raw2 = sample();
    raw2.queries.sites.paginate.type = "scroll";
    assert.match(
      compileError(raw2).message,
      /queries\.sites\.paginate\.type: expected one of page, offset, cursor, next_url, link_header, header_cursor, got "scroll"/,
    );
    const raw3 = sample();
    raw3.queries.site.extract = {};
    assert.match(compileError(raw3).message, /queries\.site\.extract: declare at least one entry/);
    const raw4 = sample();
    raw4.queries.site.extract.site.type = "web site";
    assert.match(compileError(raw4).message, /queries\.site\.extract\.site\.type: "web site" is not a name/);
    const raw5 = sample();
    raw5.queries.site.body = { a: 1 };
    assert.match(compileError(raw5).message, /queries\.site\.body: a GET request cannot carry a body/);
    const raw6 = sample();
    raw6.queries.sites.params.page = "1";
    assert.match(compileError(raw6).message, /queries\.sites\.params\.page: is set by paginate/);
    const raw7 = sample();
    raw7.queries.sites.paginate = { type: "cursor", param: "cursor" };
    assert.match(compileError(raw7).message, /queries\.sites\.paginate\.next: is required for cursor pagination/);
  });

  it("requires the name to match the file", () => {
    const raw = sample();
    raw.name = "other";
    assert.match(
      compileError(raw).message,
      /^sources\/sitestats\.yaml: name: "other" does not match the file name "sitestats"/,
    );
    assert.equal(compileSource(raw, "module:other-api.ts").name, "other");
  });

  it("applies the one name rule to source, query, data and type names, suggesting the spelling", () => {
    const raw = sample();
    raw.name = "SiteStats";
    assert.match(
      compileError(raw, "module:x").message,
      /^module:x: name: "SiteStats" is not a name: .*\(write "sitestats"\)$/,
    );
    const raw2 = sample();
    raw2.queries.site.extract.site.type = "Web-Site";
    assert.match(
      compileError(raw2).message,
      /queries\.site\.extract\.site\.type: "Web-Site" is not a name: .*\(write "web_site"\)$/,
    );
    const raw3 = sample();
    raw3.queries["site-info"] = raw3.queries.site;
    assert.match(compileError(raw3).message, /queries\.site-info: "site-info" is not a name: .*\(write "site_info"\)$/);
    const raw4 = sample();
    raw4.data = { ApiKey: { env: "SITESTATS_API_KEY" } };
    assert.match(compileError(raw4).message, /data\.ApiKey: "ApiKey" is not a name: .*\(write "apikey"\)$/);
  });

  it("refuses a bare number as a duration, asking for a unit", () => {
    const raw = sample();
    raw.manager.timeout = 5000;
    assert.equal(
      compileError(raw).message,
      "sources/sitestats.yaml: manager.timeout: expected a duration with a unit such as 250ms, 1s, 15m, 1h or 1d, got the bare number 5000; write 5000ms or 5000s, whichever is meant",
    );
    const raw2 = sample();
    raw2.manager.retries.base_delay = 200;
    assert.match(
      compileError(raw2).message,
      /manager\.retries\.base_delay: expected a duration with a unit .* got the bare number 200/,
    );
  });

  it("suggests the intended key deep in the file and lists the known ones", () => {
    const raw = sample();
    raw.limiter.windows[0].aling = "clock";
    assert.match(
      compileError(raw).message,
      /limiter\.windows\[0\]\.aling: unknown key \(did you mean "align"\?\); expected one of limit, per, align$/,
    );
    const raw2 = sample();
    raw2.queries.sites.paginate.max_page = 3;
    assert.match(
      compileError(raw2).message,
      /queries\.sites\.paginate\.max_page: unknown key \(did you mean "max_pages"\?\)/,
    );
    const raw3 = sample();
    raw3.manager.retries.maximum = 3;
    assert.match(
      compileError(raw3).message,
      /manager\.retries\.maximum: unknown key; expected one of max, base_delay, max_delay$/,
    );
  });

  it("refuses a `__proto__` key from JSON.parse in queries, data and headers, prototypes untouched", () => {
    const withQueries = {
      ...sample(),
      queries: JSON.parse('{"__proto__":{"path":"/x","extract":{"a":{"type":"t","path":"."}}}}'),
    };
    assert.match(
      compileError(withQueries).message,
      /^sources\/sitestats\.yaml: queries\.__proto__: this name is reserved/,
    );
    const withData = { ...sample(), data: JSON.parse('{"api_key":{"env":"K"},"__proto__":{"value":"x"}}') };
    assert.match(compileError(withData).message, /: data\.__proto__: this name is reserved/);
    const withHeaders = sample();
    withHeaders.manager.headers = JSON.parse('{"__proto__":"x"}');
    assert.match(compileError(withHeaders).message, /: manager\.headers\.__proto__: this name is reserved/);
    const withQueryHeaders = sample();
    withQueryHeaders.queries.site.headers = JSON.parse('{"X-A":"1","__proto__":{"polluted":"yes"}}');
    assert.match(compileError(withQueryHeaders).message, /: queries\.site\.headers\.__proto__: this name is reserved/);
    assert.equal(({} as Record<string, unknown>).polluted, undefined, "Object.prototype untouched");
    const ctor = compileSource(
      { ...sample(), queries: JSON.parse('{"constructor":{"path":"/c","extract":{"a":{"type":"t","path":"."}}}}') },
      ORIGIN,
    );
    assert.deepEqual([...ctor.queries.keys()], ["constructor"]);
    assert.equal(ctor.queries.get("toString"), undefined);
  });

  it("rejects a non-object", () => {
    assert.match(compileError("name: x").message, /^sources\/sitestats\.yaml: expected a mapping, got "name: x"/);
    assert.match(compileError(null).message, /expected a mapping, got null/);
  });
});
