import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  compileSource,
  compileTemplate,
  redact,
  renderRequest,
  renderTemplate,
  resolveData,
  type RenderContext,
} from "@machina/fetch";
import { MachinaError } from "@machina/wire";

const ctx: RenderContext = {
  source: "sitestats",
  query: "site",
  lead: { id: "lead-7", args: { domain: "ex ample.com/a", n: 5, nested: { id: "x1" }, empty: "" } },
  data: { api_key: "k-123" },
};

describe("templates", () => {
  it("renders lead and data fields, encoding only substituted values", () => {
    const t = compileTemplate("/v1/sites/{{lead.domain}}?k={{ data.api_key }}", "test");
    assert.equal(renderTemplate(t, ctx, "path", encodeURIComponent), "/v1/sites/ex%20ample.com%2Fa?k=k-123");
    assert.equal(renderTemplate(compileTemplate("{{lead.n}}-{{lead.nested.id}}", "test"), ctx, "param"), "5-x1");
    assert.equal(renderTemplate(compileTemplate("plain", "test"), ctx, "param"), "plain");
  });

  it("fails on a missing lead field with an actionable message and details", () => {
    const t = compileTemplate("/v1/sites/{{lead.domain}}", "test");
    const lead = { id: "lead-42", args: { name: "x" } };
    let caught: unknown;
    try {
      renderTemplate(t, { ...ctx, lead }, "path");
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof MachinaError);
    assert.equal(caught.code, "BAD_REQUEST");
    assert.equal(caught.retryable, false);
    assert.equal(
      caught.message,
      'query sitestats.site needs lead field "domain" (path /v1/sites/{{lead.domain}}); check the ledger that produced lead "lead-42"',
    );
    assert.deepEqual(caught.details, { field: "domain", source: "sitestats", query: "site", lead: "lead-42" });
  });

  it("treats null and empty lead values as missing", () => {
    const t = compileTemplate("{{lead.empty}}", "test");
    assert.throws(() => renderTemplate(t, ctx, "param q"), /needs lead field "empty" \(param q \{\{lead\.empty\}\}\)/);
  });

  it("rejects malformed placeholders at compile time", () => {
    assert.throws(() => compileTemplate("{{lead}}", "f: p"), /^MachinaError: f: p: placeholder \{\{lead\}\}/);
    assert.throws(
      () => compileTemplate("{{env.HOME}}", "f: p"),
      /must be \{\{lead\.<field>\}\} or \{\{data\.<name>\}\}/,
    );
    assert.throws(() => compileTemplate("{{data.a.b}}", "f: p"), /data values are flat/);
    assert.throws(() => compileTemplate("a }} b", "f: p"), /unbalanced/);
  });

  it("renders a whole request; an exact placeholder in a body keeps its JSON type", () => {
    const def = compileSource(
      {
        name: "s",
        limiter: "unlimited",
        manager: { type: "http", base_url: "http://h" },
        queries: {
          q: {
            method: "POST",
            path: "/a/{{lead.domain}}",
            params: { limit: 10, q: "{{lead.n}}" },
            headers: { "X-Trace": "t-{{lead.nested.id}}" },
            body: { n: "{{lead.n}}", s: "n={{lead.n}}", list: ["{{lead.nested}}", true, null] },
            extract: { r: { type: "thing", path: "." } },
          },
        },
      },
      "sources/s.yaml",
    );
    const req = renderRequest(def.queries.get("q")!, { ...ctx, source: "s", query: "q" });
    assert.deepEqual(req, {
      query: "q",
      method: "POST",
      path: "/a/ex%20ample.com%2Fa",
      params: { limit: "10", q: "5" },
      headers: { "X-Trace": "t-x1" },
      body: { n: 5, s: "n=5", list: [{ id: "x1" }, true, null] },
    });
  });
});

describe("secrets", () => {
  const raw = (data: unknown) => ({
    name: "sitestats",
    limiter: "unlimited",
    data,
    manager: { type: "http-auth", base_url: "http://h", auth: { type: "bearer", token: "{{data.token}}" } },
    queries: { q: { path: "/", extract: { r: { type: "t", path: "." } } } },
  });

  it("resolves env, file and constant values and records their origins", () => {
    const dir = mkdtempSync(join(tmpdir(), "fetch-secrets-"));
    writeFileSync(join(dir, "token"), "file-secret\n");
    const def = compileSource(
      raw({ token: { file: join(dir, "token") }, key: { env: "T_KEY" }, region: { value: "eu" } }),
      "sources/sitestats.yaml",
    );
    const data = resolveData(def, { T_KEY: "env-secret" });
    assert.deepEqual(data.values, { token: "file-secret", key: "env-secret", region: "eu" });
    assert.deepEqual(data.origins, {
      token: `file ${join(dir, "token")}`,
      key: "env var T_KEY",
      region: "a constant in the source file",
    });
    assert.deepEqual([...data.secrets].sort(), ["env-secret", "file-secret"]);
  });

  it("names the missing variable and the source, never a value", () => {
    const def = compileSource(raw({ token: { env: "SITESTATS_TOKEN" } }), "sources/sitestats.yaml");
    assert.throws(
      () => resolveData(def, {}),
      (err: unknown) =>
        err instanceof MachinaError &&
        err.message ===
          "source sitestats (sources/sitestats.yaml): data.token reads env var SITESTATS_TOKEN, which is not set; set it (e.g. from the source's Kubernetes Secret) or remove the source" &&
        err.retryable === false,
    );
    assert.throws(() => resolveData(def, { SITESTATS_TOKEN: "" }), /which is empty/);
  });

  it("names an unreadable secret file", () => {
    const def = compileSource(raw({ token: { file: "/nonexistent/machina/token" } }), "sources/sitestats.yaml");
    assert.throws(
      () => resolveData(def, {}),
      /data\.token reads file \/nonexistent\/machina\/token, which cannot be read \(ENOENT\)/,
    );
  });

  it("redacts secrets from text", () => {
    assert.equal(redact("key=abcd1234&x=abcd1234", ["abcd1234"]), "key=***&x=***");
  });
});
