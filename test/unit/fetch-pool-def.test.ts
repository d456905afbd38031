import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { compileSource, credentialHash, redact, resolveData } from "@machina/fetch";
import { MachinaError } from "@machina/wire";

const ORIGIN = "sources/pooled.yaml";

// Tests reach into nested fields freely to break one thing at a time.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function sample(): Record<string, any> {
  return {
    name: "pooled",
    limiter: { windows: [{ limit: 10, per: "1s" }] },
    manager: {
      type: "http-auth",
      base_url: "http://127.0.0.1:8787",
      auth: { type: "api_key", header: "X-Api-Key", value: "{{data.api_key}}" },
    },
    pool: {
      credentials: {
        primary: { api_key: { env: "POOLED_KEY_1" } },
        backup: { api_key: { env: "POOLED_KEY_2" } },
      },
    },
    queries: { site: { path: "/v1/sites/{{lead.domain}}", extract: { site: { type: "website", path: "site" } } } },
  };
}

function compileError(raw: unknown): MachinaError {
  try {
    compileSource(raw, ORIGIN);
  } catch (err) {
    assert.ok(err instanceof MachinaError, `expected MachinaError, got ${String(err)}`);
    assert.equal(err.code, "BAD_REQUEST");
    return err;
  }
  assert.fail("compileSource accepted an invalid pool");
}

function resolveError(raw: unknown, env: NodeJS.ProcessEnv): MachinaError {
  try {
    resolveData(compileSource(raw, ORIGIN), env);
  } catch (err) {
    assert.ok(err instanceof MachinaError, `expected MachinaError, got ${String(err)}`);
    assert.equal(err.code, "UNAVAILABLE");
    assert.equal(err.retryable, false);
    return err;
  }
  assert.fail("resolveData accepted a broken pool");
}

const dir = mkdtempSync(join(tmpdir(), "machina-pool-def-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("credential pool definitions", () => {
  it("compiles a pool: named credentials, lists, the bench time and shared windows", () => {
    const raw = sample();
    raw.pool.credentials = { primary: { api_key: { env: "POOLED_KEY_1" } } };
    raw.pool.lists = [{ file: "/run/secrets/keys", data: "api_key" }];
    raw.pool.bench = "5m";
    raw.pool.windows = [{ limit: 25, per: "1s" }];
    const def = compileSource(raw, ORIGIN);
    assert.deepEqual(def.pool, {
      credentials: [{ name: "primary", data: { api_key: { kind: "env", name: "POOLED_KEY_1" } } }],
      lists: [{ file: "/run/secrets/keys", data: "api_key" }],
      names: ["api_key"],
      benchMs: 300_000,
      windows: [{ limit: 25, perMs: 1000, align: "rolling" }],
    });
    assert.equal(compileSource(sample(), ORIGIN).pool?.benchMs, 600_000, "benched 10 minutes by default");
    const plain = sample();
    delete plain.pool;
    assert.equal(plain.data, undefined);
    plain.data = { api_key: { env: "K" } };
    assert.equal(compileSource(plain, ORIGIN).pool, null);
  });

  it("refuses pools that cannot work, naming the field", () => {
    const cases: [string, (raw: ReturnType<typeof sample>) => void, RegExp][] = [
      ["no credentials", (r) => (r.pool.credentials = {}), /pool: declare credentials or lists/],
      [
        "no auth",
        (r) => {
          r.manager.type = "http";
          delete r.manager.auth;
        },
        /pool: needs manager.type http-auth and manager.auth/,
      ],
      [
        "a credential lacking a value",
        (r) => (r.pool.credentials.backup = { token: { env: "T" } }),
        /pool.credentials.primary: lacks token; every credential of a pool supplies the same data \(api_key, token\)/,
      ],
      [
        "a pool value also under data",
        (r) => (r.data = { api_key: { env: "K" } }),
        /data.api_key: is supplied by each credential of the pool; remove it from data/,
      ],
      [
        "a pool value outside manager.auth",
        (r) => (r.queries.site.params = { key: "{{data.api_key}}" }),
        /queries.site.params.key: \{\{data.api_key\}\} is supplied per credential by pool; only manager.auth may use it/,
      ],
      [
        "a list for an auth of two values",
        (r) => {
          r.manager.auth = { type: "basic", username: "{{data.user}}", password: "{{data.pass}}" };
          r.pool.credentials = { a: { user: { env: "U" }, pass: { env: "P" } } };
          r.pool.lists = [{ file: "/k", data: "user" }];
        },
        /pool.lists: a list supplies one value per line/,
      ],
      ["a constant secret", (r) => (r.pool.credentials.primary.api_key = { value: "x" }), /unknown key/],
      ["a bench under 1s", (r) => (r.pool.bench = "10ms"), /pool.bench: must be at least 1s/],
      [
        "two shared windows of one length",
        (r) =>
          (r.pool.windows = [
            { limit: 1, per: "1s" },
            { limit: 2, per: "1s" },
          ]),
        /pool.windows\[1\].per: two windows have the same length/,
      ],
    ];
    for (const [what, mutate, message] of cases) {
      const raw = sample();
      mutate(raw);
      assert.match(compileError(raw).message, message, what);
    }
  });

  it("reads every credential's secret, ids by name or a short hash, secrets scrubbable", () => {
    const list = join(dir, "keys");
    writeFileSync(list, "# rotated weekly\n  listed-key-aaaa-1111  \n\nlisted-key-bbbb-2222\n");
    const raw = sample();
    raw.pool.lists = [{ file: list, data: "api_key" }];
    const data = resolveData(compileSource(raw, ORIGIN), {
      POOLED_KEY_1: "named-key-cccc-3333",
      POOLED_KEY_2: "named-key-dddd-4444",
    });
    assert.deepEqual(
      data.credentials?.map((c) => [c.id, c.values.api_key, c.origins.api_key]),
      [
        ["primary", "named-key-cccc-3333", "env var POOLED_KEY_1 (credential primary)"],
        ["backup", "named-key-dddd-4444", "env var POOLED_KEY_2 (credential backup)"],
        [
          credentialHash("pooled", "listed-key-aaaa-1111"),
          "listed-key-aaaa-1111",
          `line 2 of file ${list} (credential ${credentialHash("pooled", "listed-key-aaaa-1111")})`,
        ],
        [
          credentialHash("pooled", "listed-key-bbbb-2222"),
          "listed-key-bbbb-2222",
          `line 4 of file ${list} (credential ${credentialHash("pooled", "listed-key-bbbb-2222")})`,
        ],
      ],
    );
    assert.equal(
      redact("sent listed-key-bbbb-2222 and named-key-cccc-3333", data.secrets),
      "sent *** and ***",
      "pool secrets are scrubbed like any other",
    );
    // Stable across runs and sources apart; never the value itself.
    assert.equal(credentialHash("pooled", "v"), credentialHash("pooled", "v"));
    assert.notEqual(credentialHash("pooled", "v"), credentialHash("other", "v"));
    assert.match(credentialHash("pooled", "listed-key-aaaa-1111"), /^k[0-9a-f]{12}$/);
  });

  it("refuses missing, empty or duplicated secrets without showing them", () => {
    const env = { POOLED_KEY_1: "named-key-eeee-5555", POOLED_KEY_2: "named-key-ffff-6666" };
    const missing = resolveError(sample(), { POOLED_KEY_1: env.POOLED_KEY_1 });
    assert.match(missing.message, /pool.credentials.backup.api_key reads env var POOLED_KEY_2, which is not set/);
    const dup = resolveError(sample(), { POOLED_KEY_1: env.POOLED_KEY_1, POOLED_KEY_2: env.POOLED_KEY_1 });
    assert.match(dup.message, /pool credentials primary and backup hold the same secret; remove one/);
    assert.ok(!dup.message.includes(env.POOLED_KEY_1));
    const empty = join(dir, "empty");
    writeFileSync(empty, "# nothing yet\n\n");
    const raw = sample();
    raw.pool.lists = [{ file: empty, data: "api_key" }];
    assert.match(resolveError(raw, env).message, /file .*empty lists no credential; write one per line/);
    raw.pool.lists = [{ file: join(dir, "absent"), data: "api_key" }];
    assert.match(resolveError(raw, env).message, /cannot be read \(ENOENT\)/);
  });
});
