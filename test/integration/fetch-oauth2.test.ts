import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, beforeEach, describe, it } from "node:test";
import { compileSource, createHttpManager, resolveData, type HttpManager, type HttpRequest } from "@machina/fetch";
import { MachinaError } from "@machina/wire";

const CLIENT_ID = "machina client/1";
const CLIENT_SECRET = "s3cr3t:+/value=";
const ENV = { OAUTHY_CLIENT_ID: CLIENT_ID, OAUTHY_CLIENT_SECRET: CLIENT_SECRET, OAUTHY_TOKEN: "static-bearer-tok" };
const GET: HttpRequest = { query: "things", method: "GET", path: "/v1/things", params: {}, headers: {} };

interface TokenRequest {
  readonly headers: IncomingMessage["headers"];
  readonly form: URLSearchParams;
}

// A token endpoint and an API behind it, on one real local server. Tokens are `tok-1`, `tok-2`...;
// the API accepts any issued token that has not been revoked.
class AuthServer {
  server!: Server;
  base = "";
  tokenRequests: TokenRequest[] = [];
  apiCalls: (string | undefined)[] = [];
  issued = new Set<string>();
  revoked = new Set<string>();
  /** Answers the next token requests with these, in order; then a normal token. */
  tokenAnswers: { status: number; body: unknown }[] = [];
  /** Extra fields of a normal token answer (expires_in, token_type); `expires_in` absent when undefined. */
  tokenFields: Record<string, unknown> = { token_type: "Bearer", expires_in: 3600 };
  tokenDelayMs = 0;
  /** When set, the API answers 401 to everything. */
  apiAlways401 = false;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => this.handle(req, Buffer.concat(chunks).toString("utf8"), res));
    });
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  reset(): void {
    this.tokenRequests = [];
    this.apiCalls = [];
    this.issued.clear();
    this.revoked.clear();
    this.tokenAnswers = [];
    this.tokenFields = { token_type: "Bearer", expires_in: 3600 };
    this.tokenDelayMs = 0;
    this.apiAlways401 = false;
  }

  get host(): string {
    return new URL(this.base).host;
  }

  private handle(req: IncomingMessage, body: string, res: ServerResponse): void {
    const json = (status: number, value: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(value));
    };
    if (req.url === "/oauth/token" && req.method === "POST") {
      this.tokenRequests.push({ headers: req.headers, form: new URLSearchParams(body) });
      const canned = this.tokenAnswers.shift();
      if (canned !== undefined) return json(canned.status, canned.body);
      const token = `tok-${this.issued.size + 1}`;
      this.issued.add(token);
      setTimeout(() => json(200, { access_token: token, ...this.tokenFields }), this.tokenDelayMs);
      return;
    }
    const auth = req.headers.authorization;
    this.apiCalls.push(auth);
    const token = auth?.startsWith("Bearer ") ? auth.slice(7) : undefined;
    const ok =
      !this.apiAlways401 &&
      ((token !== undefined && this.issued.has(token) && !this.revoked.has(token)) ||
        auth === `Bearer ${ENV.OAUTHY_TOKEN}`);
    if (!ok) return json(401, { error: "unauthorized", message: "token not accepted" });
    json(200, { things: [{ id: 1 }], token });
  }
}

type Auth = Record<string, unknown>;

function manager(
  srv: AuthServer,
  auth: Auth,
  opts: { now?: () => number; retries?: number; data?: Record<string, unknown> } = {},
): HttpManager {
  const def = compileSource(
    {
      name: "oauthy",
      limiter: "unlimited",
      data: opts.data ?? {
        client_id: { env: "OAUTHY_CLIENT_ID" },
        client_secret: { env: "OAUTHY_CLIENT_SECRET" },
        token: { env: "OAUTHY_TOKEN" },
      },
      manager: {
        type: "http-auth",
        base_url: srv.base,
        timeout: "2s",
        auth,
        retries: { max: opts.retries ?? 2, base_delay: "1ms", max_delay: "5ms" },
      },
      queries: { things: { path: "/v1/things", extract: { things: { type: "thing", path: "things" } } } },
    },
    "sources/oauthy.yaml",
  );
  return createHttpManager(def, resolveData(def, ENV), { now: opts.now, sleep: async () => undefined });
}

const oauth2 = (srv: AuthServer, extra: Auth = {}): Auth => ({
  type: "oauth2",
  token_url: `${srv.base}/oauth/token`,
  client_id: "{{data.client_id}}",
  client_secret: "{{data.client_secret}}",
  ...extra,
});

async function failure(p: Promise<unknown>, code: string): Promise<MachinaError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof MachinaError, `expected MachinaError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}`);
}

function assertNoSecret(e: MachinaError): void {
  const text = JSON.stringify({ m: e.message, d: e.details });
  assert.ok(!text.includes(CLIENT_SECRET), `secret leaked: ${text}`);
  assert.ok(!text.includes(encodeURIComponent(CLIENT_SECRET)), `encoded secret leaked: ${text}`);
}

describe("oauth2 client credentials against a local token server and API", () => {
  const srv = new AuthServer();

  before(() => srv.start());
  after(() => srv.stop());
  beforeEach(() => srv.reset());

  it("fetches one token and reuses it across many calls", async () => {
    const m = manager(srv, oauth2(srv));
    for (let i = 0; i < 10; i++) {
      const res = await m.call(GET);
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { things: [{ id: 1 }], token: "tok-1" });
      assert.equal(res.attempts, 1);
    }
    assert.equal(srv.tokenRequests.length, 1);
    assert.deepEqual(srv.apiCalls, Array(10).fill("Bearer tok-1"));
  });

  it("refreshes the token refresh_margin before it expires, measured on the manager's clock", async () => {
    let now = 0;
    const m = manager(srv, oauth2(srv, { refresh_margin: "10s" }), { now: () => now });
    srv.tokenFields = { token_type: "bearer", expires_in: 60 };
    await m.call(GET);
    now = 49_000;
    await m.call(GET);
    assert.equal(srv.tokenRequests.length, 1, "still fresh 11 s before expiry");
    now = 50_000;
    await m.call(GET);
    assert.equal(srv.tokenRequests.length, 2, "replaced 10 s before expiry");
    assert.deepEqual(srv.apiCalls, ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]);
  });

  it("refreshes a short-lived token at half its life when the margin is longer, on the real clock", async () => {
    // expires_in 0.3 s is below the default 30 s margin, so the token lives 150 ms.
    srv.tokenFields = { expires_in: 0.3 };
    const m = manager(srv, oauth2(srv));
    await m.call(GET);
    await m.call(GET);
    assert.equal(srv.tokenRequests.length, 1);
    await new Promise((r) => setTimeout(r, 200));
    await m.call(GET);
    assert.equal(srv.tokenRequests.length, 2);
    assert.equal(srv.apiCalls.at(-1), "Bearer tok-2");
  });

  it("assumes default_expires_in when the answer has no expires_in (a numeric string counts)", async () => {
    let now = 0;
    srv.tokenFields = {};
    const m = manager(srv, oauth2(srv, { default_expires_in: "10m" }), { now: () => now });
    await m.call(GET);
    now = 569_000; // 9m29s: still before the 30 s default margin
    await m.call(GET);
    assert.equal(srv.tokenRequests.length, 1);
    now = 570_000;
    srv.tokenFields = { expires_in: "120" };
    await m.call(GET);
    assert.equal(srv.tokenRequests.length, 2);
    now = 570_000 + 89_000;
    await m.call(GET);
    assert.equal(srv.tokenRequests.length, 2);
    now = 570_000 + 90_000;
    await m.call(GET);
    assert.equal(srv.tokenRequests.length, 3);
  });

  it("lets concurrent first calls share one token request", async () => {
    srv.tokenDelayMs = 100;
    const m = manager(srv, oauth2(srv));
    const results = await Promise.all(Array.from({ length: 25 }, () => m.call(GET)));
    assert.equal(srv.tokenRequests.length, 1);
    assert.equal(srv.apiCalls.length, 25);
    assert.ok(results.every((r) => (r.body as { token: string }).token === "tok-1"));
  });

  it("auth_style header (the default) sends the form-encoded id and secret as HTTP Basic", async () => {
    await manager(srv, oauth2(srv)).call(GET);
    const [t] = srv.tokenRequests;
    assert.equal(t.headers["content-type"], "application/x-www-form-urlencoded");
    assert.equal(t.headers.accept, "application/json");
    const basic = t.headers.authorization ?? "";
    assert.match(basic, /^Basic /);
    const [id, secret] = Buffer.from(basic.slice(6), "base64").toString("utf8").split(":");
    // RFC 6749 §2.3.1: each is form-encoded before joining, so a ':' in the secret stays unambiguous.
    assert.equal(decodeURIComponent(id.replace(/\+/g, " ")), CLIENT_ID);
    assert.equal(decodeURIComponent(secret.replace(/\+/g, " ")), CLIENT_SECRET);
    assert.equal(t.form.get("grant_type"), "client_credentials");
    assert.equal(t.form.has("client_id"), false);
    assert.equal(t.form.has("client_secret"), false);
    assert.equal(t.form.has("scope"), false);
  });

  it("auth_style body sends the id and secret as form fields, with no Authorization header", async () => {
    await manager(srv, oauth2(srv, { auth_style: "body" })).call(GET);
    const [t] = srv.tokenRequests;
    assert.equal(t.headers.authorization, undefined);
    assert.equal(t.form.get("grant_type"), "client_credentials");
    assert.equal(t.form.get("client_id"), CLIENT_ID);
    assert.equal(t.form.get("client_secret"), CLIENT_SECRET);
  });

  it("sends scopes space-separated and the extra form params", async () => {
    const m = manager(
      srv,
      oauth2(srv, { scopes: ["read:things", "write:things"], params: { audience: "{{data.aud}}" } }),
      {
        data: {
          client_id: { env: "OAUTHY_CLIENT_ID" },
          client_secret: { env: "OAUTHY_CLIENT_SECRET" },
          aud: { value: "https://api.example.com" },
        },
      },
    );
    await m.call(GET);
    const [t] = srv.tokenRequests;
    assert.equal(t.form.get("scope"), "read:things write:things");
    assert.equal(t.form.get("audience"), "https://api.example.com");
  });

  it("on a 401 drops the token, fetches a new one and retries the call once", async () => {
    const m = manager(srv, oauth2(srv), { retries: 0 });
    await m.call(GET);
    srv.revoked.add("tok-1");
    const res = await m.call(GET);
    assert.equal(res.status, 200);
    assert.equal(res.attempts, 2);
    assert.equal(srv.tokenRequests.length, 2);
    assert.deepEqual(srv.apiCalls, ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]);
    // The new token is cached like the first.
    await m.call(GET);
    assert.equal(srv.tokenRequests.length, 2);
  });

  it("concurrent calls refused with the same token share one new token", async () => {
    const m = manager(srv, oauth2(srv));
    await m.call(GET);
    srv.revoked.add("tok-1");
    srv.tokenDelayMs = 50;
    const results = await Promise.all(Array.from({ length: 8 }, () => m.call(GET)));
    assert.ok(results.every((r) => r.status === 200));
    assert.equal(srv.tokenRequests.length, 2);
  });

  it("fails with UPSTREAM naming the source and status when the new token is refused too", async () => {
    srv.apiAlways401 = true;
    const m = manager(srv, oauth2(srv));
    const e = await failure(m.call(GET), "UPSTREAM");
    assert.match(
      e.message,
      /^source oauthy refused the credentials \(HTTP 401 on GET \/v1\/things, again with a freshly fetched token\); check the OAuth2 client credentials and scopes supplied by env var OAUTHY_CLIENT_ID and env var OAUTHY_CLIENT_SECRET/,
    );
    assert.equal(e.retryable, false);
    assert.equal(e.details.source, "oauthy");
    assert.equal(e.details.status, 401);
    assert.equal(e.details.attempts, 2);
    assert.equal(srv.apiCalls.length, 2);
    assert.equal(srv.tokenRequests.length, 2);
    assert.ok(!e.message.includes("tok-"), e.message);
    assertNoSecret(e);
  });

  it("a token endpoint 400 fails at once with UPSTREAM naming source, host and status, never the secret", async () => {
    srv.tokenAnswers = [
      { status: 400, body: { error: "invalid_client", error_description: `client secret ${CLIENT_SECRET} is wrong` } },
    ];
    const e = await failure(manager(srv, oauth2(srv)).call(GET), "UPSTREAM");
    assert.match(e.message, /^source oauthy got no OAuth2 token: the token endpoint /);
    assert.ok(e.message.includes(srv.host), e.message);
    assert.ok(e.message.includes("HTTP 400"), e.message);
    assert.ok(e.message.includes('upstream said: "invalid_client: client secret *** is wrong"'), e.message);
    assert.ok(e.message.includes("env var OAUTHY_CLIENT_ID and env var OAUTHY_CLIENT_SECRET"), e.message);
    assert.equal(e.retryable, false);
    assert.equal(e.details.source, "oauthy");
    assert.equal(e.details.tokenHost, srv.host);
    assert.equal(e.details.status, 400);
    assert.equal(e.details.attempts, 0);
    assert.equal(srv.tokenRequests.length, 1);
    assert.equal(srv.apiCalls.length, 0);
    assertNoSecret(e);
  });

  it("a token endpoint 500 is retried with the call's retry policy, then fails with UPSTREAM", async () => {
    const boom = { status: 500, body: { error: "server_error" } };
    srv.tokenAnswers = [boom, boom, boom];
    const e = await failure(manager(srv, oauth2(srv), { retries: 2 }).call(GET), "UPSTREAM");
    assert.match(
      e.message,
      /^source oauthy got no OAuth2 token: the token endpoint 127\.0\.0\.1:\d+ answered HTTP 500; upstream said: "server_error"; the token endpoint is having trouble, retry later \(gave up after 3 attempts\)$/,
    );
    assert.equal(e.retryable, true);
    assert.equal(e.details.status, 500);
    assert.equal(srv.tokenRequests.length, 3);
    assert.equal(srv.apiCalls.length, 0);
    assertNoSecret(e);

    // One failure then a token: the call succeeds on the retry.
    srv.reset();
    srv.tokenAnswers = [boom];
    const res = await manager(srv, oauth2(srv)).call(GET);
    assert.equal(res.status, 200);
    assert.equal(res.attempts, 1);
    assert.equal(srv.tokenRequests.length, 2);
  });

  it("an answer without access_token or of another token type is UPSTREAM, not retried", async () => {
    srv.tokenAnswers = [{ status: 200, body: { token_type: "bearer" } }];
    const e = await failure(manager(srv, oauth2(srv)).call(GET), "UPSTREAM");
    assert.match(e.message, /answered HTTP 200 without an access_token/);
    srv.reset();
    srv.tokenAnswers = [{ status: 200, body: { access_token: "mac-1", token_type: "mac" } }];
    const e2 = await failure(manager(srv, oauth2(srv)).call(GET), "UPSTREAM");
    assert.match(e2.message, /of type "mac" .*only bearer tokens are supported/);
    assert.equal(srv.tokenRequests.length, 1);
    assert.equal(srv.apiCalls.length, 0);
  });

  it("an unreachable token endpoint is UPSTREAM naming the host", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const m = manager(srv, oauth2(srv, { token_url: `http://127.0.0.1:${port}/oauth/token` }), { retries: 0 });
    const e = await failure(m.call(GET), "UPSTREAM");
    assert.match(
      e.message,
      new RegExp(`^source oauthy could not reach the OAuth2 token endpoint 127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)`),
    );
    assert.equal(e.retryable, true);
    assert.equal(srv.apiCalls.length, 0);
  });

  for (const [kind, auth] of [
    ["bearer", { type: "bearer", token: "{{data.token}}" }],
    ["api_key", { type: "api_key", header: "X-Api-Key", value: "{{data.token}}" }],
    ["basic", { type: "basic", username: "{{data.client_id}}", password: "{{data.client_secret}}" }],
  ] as const) {
    it(`${kind}: a 401 is not retried (exactly one call) and fails with UPSTREAM naming source and status`, async () => {
      srv.apiAlways401 = true;
      const e = await failure(manager(srv, auth).call(GET), "UPSTREAM");
      assert.match(e.message, /^source oauthy refused the credentials \(HTTP 401 on GET \/v1\/things\); check the /);
      assert.equal(e.retryable, false);
      assert.equal(e.details.status, 401);
      assert.equal(e.details.attempts, 1);
      assert.equal(srv.apiCalls.length, 1);
      assert.equal(srv.tokenRequests.length, 0);
      assertNoSecret(e);
    });
  }

  it("bearer still works as before", async () => {
    const res = await manager(srv, { type: "bearer", token: "{{data.token}}" }).call(GET);
    assert.equal(res.status, 200);
    assert.deepEqual(srv.apiCalls, [`Bearer ${ENV.OAUTHY_TOKEN}`]);
  });
});

describe("oauth2 source schema", () => {
  const compile = (auth: Auth, data: Record<string, unknown> = { id: { value: "x" }, secret: { env: "S" } }) =>
    compileSource(
      {
        name: "oauthy",
        limiter: "unlimited",
        data,
        manager: { type: "http-auth", base_url: "https://api.example.com", auth },
        queries: { q: { path: "/x", extract: { x: { type: "thing", path: "." } } } },
      },
      "sources/oauthy.yaml",
    );
  const base = {
    type: "oauth2",
    token_url: "https://auth.example.com/oauth/token",
    client_id: "{{data.id}}",
    client_secret: "{{data.secret}}",
  };
  const badRequest = (fn: () => unknown, message: RegExp) =>
    assert.throws(fn, (err: MachinaError) => {
      assert.equal(err.code, "BAD_REQUEST");
      assert.match(err.message, message);
      return true;
    });

  it("fills the documented defaults", () => {
    const auth = compile(base).manager.auth;
    assert.ok(auth?.type === "oauth2");
    assert.equal(auth.tokenUrl, "https://auth.example.com/oauth/token");
    assert.deepEqual(auth.scopes, []);
    assert.equal(auth.authStyle, "header");
    assert.deepEqual(auth.params, {});
    assert.equal(auth.refreshMarginMs, 30_000);
    assert.equal(auth.defaultExpiresInMs, 3_600_000);
  });

  it("names the file and field of each mistake", () => {
    badRequest(() => compile({ ...base, token_url: undefined }), /^sources\/oauthy\.yaml: manager\.auth\.token_url: /);
    badRequest(
      () => compile({ ...base, token_url: "ftp://auth.example.com/t" }),
      /^sources\/oauthy\.yaml: manager\.auth\.token_url: scheme must be http or https/,
    );
    badRequest(
      () => compile({ ...base, token_url: "https://u:p@auth.example.com/t" }),
      /manager\.auth\.token_url: must not carry credentials/,
    );
    badRequest(() => compile({ ...base, auth_style: "query" }), /^sources\/oauthy\.yaml: manager\.auth\.auth_style: /);
    badRequest(() => compile({ ...base, scopes: "read" }), /^sources\/oauthy\.yaml: manager\.auth\.scopes: /);
    badRequest(
      () => compile({ ...base, params: { scope: "x" } }),
      /^sources\/oauthy\.yaml: manager\.auth\.params\.scope: is set by the oauth2 auth itself/,
    );
    badRequest(
      () => compile({ ...base, client_secret: "{{lead.secret}}" }),
      /^sources\/oauthy\.yaml: manager\.auth\.client_secret: credentials may only use \{\{data\.<name>\}\}/,
    );
    badRequest(
      () => compile({ ...base, client_secret: "{{data.nope}}" }),
      /^sources\/oauthy\.yaml: manager\.auth\.client_secret: \{\{data\.nope\}\} is not declared under data/,
    );
    badRequest(() => compile({ ...base, refresh_margin: 30 }), /manager\.auth\.refresh_margin: .*bare number 30/);
    badRequest(
      () => compile({ ...base, tokenurl: "x" }),
      /manager\.auth\.tokenurl: unknown key \(did you mean "token_url"\?\)/,
    );
  });
});
