// Covers @machina/config: process-config layering and origins, strict errors, components merge/env overrides, durations, env names.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  ConfigError,
  baseSchema,
  deepMerge,
  envName,
  loadComponents,
  loadProcessConfig,
  parseConfigFile,
  parseDuration,
  formatDuration,
  durationProblem,
  screamingSnake,
} from "@machina/config";

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

/** A fresh config root with the given files (path relative to the root → content). */
function configRoot(files: Record<string, string>): string {
  const root = mkdtempSync(path.join(tmpdir(), "machina-config-"));
  roots.push(root);
  for (const [rel, text] of Object.entries(files)) {
    const abs = path.join(root, rel);
    mkdirSync(path.dirname(abs), { recursive: true });
    writeFileSync(abs, text);
  }
  return root;
}

const schema = {
  ...baseSchema({ httpPort: 9301 }),
  fetch: {
    maxPages: { doc: "pages per query", format: "nat", default: 5 },
    userAgent: { doc: "UA", format: String, default: "machina" },
    strictTls: { doc: "verify TLS", format: Boolean, default: true },
  },
};

interface Values {
  mesh: { prefix: string; node: string };
  nats: { url: string; user: string; pass: string; replicas: number };
  http: { port: number; host: string };
  log: { level: string };
  fetch: { maxPages: number; userAgent: string; strictTls: boolean };
}

function load(configDir: string, opts: { mode?: string; env?: NodeJS.ProcessEnv; service?: string } = {}) {
  return loadProcessConfig<Values>(opts.service ?? "fetch", schema as never, {
    configDir,
    mode: opts.mode ?? "prod",
    env: opts.env ?? {},
  });
}

function configErr(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected a ConfigError");
}

describe("loadProcessConfig precedence", () => {
  // One key per layer boundary, so each layer's win is visible separately.
  const files = {
    "default/common.yaml": "nats:\n  url: nats://default-common:4222\n  replicas: 2\nlog:\n  level: warn\n",
    "default/fetch.yaml":
      "nats:\n  url: nats://default-fetch:4222\nfetch:\n  maxPages: 10\n  userAgent: default-ua\nhttp:\n  host: 10.0.0.1\n",
    "prod/common.yaml": "fetch:\n  userAgent: prod-common-ua\n",
    "prod/fetch.yaml": "fetch:\n  maxPages: 20\nhttp:\n  port: 8080\n",
  };

  it("layers schema default ← default folder ← mode folder ← MACHINA_<KEY> ← MACHINA_<SVC>_<KEY>", () => {
    const dir = configRoot(files);
    const env = {
      MACHINA_HTTP_PORT: "7000", // generic env beats the mode file
      MACHINA_LOG_LEVEL: "error", // generic env beats the default file
      MACHINA_FETCH_LOG_LEVEL: "debug", // service env beats generic env
    };
    const c = load(dir, { env });
    assert.equal(c.values.mesh.prefix, "machina"); // schema default
    assert.equal(c.values.nats.replicas, 2); // default/common
    assert.equal(c.values.nats.url, "nats://default-fetch:4222"); // default/<svc> over default/common
    assert.equal(c.values.http.host, "10.0.0.1"); // default/<svc>
    assert.equal(c.values.fetch.userAgent, "prod-common-ua"); // prod/common over default/<svc>
    assert.equal(c.values.http.port, 7000); // env over prod/<svc>, coerced to a number
    assert.equal(c.values.log.level, "debug");
    assert.equal(c.values.fetch.maxPages, 20); // prod/<svc> over default/<svc>
    assert.equal(c.mode, "prod");
    assert.equal(c.configDir, dir);
  });

  it("names the layer each value came from", () => {
    const dir = configRoot(files);
    const c = load(dir, {
      env: { MACHINA_HTTP_PORT: "7000", MACHINA_LOG_LEVEL: "error", MACHINA_FETCH_LOG_LEVEL: "debug" },
    });
    assert.equal(c.origin("mesh.prefix"), "default");
    assert.equal(c.origin("nats.replicas"), path.join("config", "default", "common.yaml"));
    assert.equal(c.origin("nats.url"), path.join("config", "default", "fetch.yaml"));
    assert.equal(c.origin("fetch.userAgent"), path.join("config", "prod", "common.yaml"));
    assert.equal(c.origin("fetch.maxPages"), path.join("config", "prod", "fetch.yaml"));
    assert.equal(c.origin("http.port"), "env MACHINA_HTTP_PORT");
    assert.equal(c.origin("log.level"), "env MACHINA_FETCH_LOG_LEVEL");
  });

  it("reads MACHINA_<SVC>_<KEY> for the loading service only", () => {
    const dir = configRoot(files);
    const env = {
      MACHINA_FETCH_FETCH_MAX_PAGES: "40",
      MACHINA_INVOKE_NATS_REPLICAS: "5",
      MACHINA_FETCH_FETCH_STRICT_TLS: "false",
    };
    const c = load(dir, { env });
    assert.equal(c.values.fetch.maxPages, 40);
    assert.equal(c.origin("fetch.maxPages"), "env MACHINA_FETCH_FETCH_MAX_PAGES");
    assert.equal(c.values.nats.replicas, 2); // invoke's variable is not fetch's
    assert.equal(c.values.fetch.strictTls, false); // "false" is coerced for a Boolean key
  });

  it("ignores the mode folder in default mode and other modes' folders", () => {
    const dir = configRoot({ ...files, "staging/fetch.yaml": "fetch:\n  maxPages: 99\n" });
    assert.equal(load(dir, { mode: "default" }).values.fetch.maxPages, 10);
    assert.equal(load(dir, { mode: "default" }).values.fetch.userAgent, "default-ua");
    assert.equal(load(dir, { mode: "prod" }).values.fetch.maxPages, 20);
    assert.equal(load(dir, { mode: "staging" }).values.fetch.maxPages, 99);
    // a mode without a folder is just the default folder
    assert.equal(load(dir, { mode: "nowhere" }).values.fetch.maxPages, 10);
  });

  it("uses schema defaults when the config root is empty", () => {
    const c = load(configRoot({}), { mode: "default" });
    assert.equal(c.values.http.port, 9301);
    assert.equal(c.values.nats.url, "nats://127.0.0.1:4222");
    assert.equal(c.origin("http.port"), "default");
  });

  it("prefers YAML over JSON over XML within one folder, key by key", () => {
    const dir = configRoot({
      "default/fetch.xml":
        '<?xml version="1.0"?><config><fetch><userAgent>from-xml</userAgent><maxPages>1</maxPages></fetch><http><host>xml-host</host></http></config>',
      "default/fetch.json": JSON.stringify({ fetch: { userAgent: "from-json", maxPages: 2 } }),
      "default/fetch.yaml": "fetch:\n  userAgent: from-yaml\n",
    });
    const c = load(dir, { mode: "default" });
    assert.equal(c.values.fetch.userAgent, "from-yaml");
    assert.equal(c.values.fetch.maxPages, 2); // JSON beats XML where YAML is silent
    assert.equal(c.values.http.host, "xml-host"); // only XML sets it
    assert.equal(c.origin("fetch.userAgent"), path.join("config", "default", "fetch.yaml"));
    assert.equal(c.origin("fetch.maxPages"), path.join("config", "default", "fetch.json"));
    assert.equal(c.origin("http.host"), path.join("config", "default", "fetch.xml"));
  });

  it("lets a mode XML file beat a default YAML file (folder order before format order)", () => {
    const dir = configRoot({
      "default/fetch.yaml": "fetch:\n  maxPages: 3\n",
      "prod/fetch.xml": "<config><fetch><maxPages>4</maxPages></fetch></config>",
    });
    const c = load(dir);
    assert.equal(c.values.fetch.maxPages, 4);
    assert.equal(c.origin("fetch.maxPages"), path.join("config", "prod", "fetch.xml"));
  });
});

describe("loadProcessConfig strict validation", () => {
  it("rejects an unknown key, naming the file and the key", () => {
    const dir = configRoot({
      "default/fetch.yaml": "fetch:\n  maxPages: 3\n",
      "prod/common.json": JSON.stringify({ http: { prot: 80 } }),
    });
    const err = configErr(() => load(dir));
    assert.equal(err.origin, path.join("config", "prod", "common.json"));
    assert.match(err.message, /^config\/prod\/common\.json: /);
    assert.match(err.message, /'http\.prot' not declared/);
  });

  it("rejects a key of another service's schema in this service's file", () => {
    const dir = configRoot({ "default/fetch.yaml": "invoke:\n  maxInFlight: 3\n" });
    const err = configErr(() => load(dir, { mode: "default" }));
    assert.match(err.message, /config\/default\/fetch\.yaml: .*invoke\.maxInFlight/);
  });

  it("rejects a wrong type in a file, naming the file and the key", () => {
    const dir = configRoot({ "default/common.yaml": "nats:\n  replicas: many\n" });
    const err = configErr(() => load(dir, { mode: "default" }));
    assert.equal(err.origin, path.join("config", "default", "common.yaml"));
    assert.match(err.message, /nats\.replicas: must be a positive integer/);
    const dir2 = configRoot({ "default/fetch.json": JSON.stringify({ log: { level: "loud" } }) });
    assert.match(
      configErr(() => load(dir2, { mode: "default" })).message,
      /^config\/default\/fetch\.json: log\.level: must be one of/,
    );
  });

  it("rejects a wrong env value, naming the variable and the key", () => {
    const err = configErr(() => load(configRoot({}), { env: { MACHINA_FETCH_HTTP_PORT: "99999" } }));
    assert.equal(err.origin, "env MACHINA_FETCH_HTTP_PORT");
    assert.match(err.message, /^env MACHINA_FETCH_HTTP_PORT: http\.port: /);
  });

  it("rejects a file that does not parse, or whose top level is not a mapping", () => {
    const bad = configRoot({ "default/fetch.json": "{ nope" });
    const e1 = configErr(() => load(bad, { mode: "default" }));
    assert.equal(e1.origin, path.join("config", "default", "fetch.json"));
    assert.match(e1.message, /cannot parse/);
    const list = configRoot({ "default/fetch.yaml": "- a\n- b\n" });
    assert.match(configErr(() => load(list, { mode: "default" })).message, /top level must be a mapping/);
  });

  it("treats an empty file as no settings", () => {
    const c = load(configRoot({ "default/fetch.yaml": "", "default/common.yaml": "# only a comment\n" }), {
      mode: "default",
    });
    assert.equal(c.values.fetch.maxPages, 5);
  });
});

describe("parseConfigFile", () => {
  it("uses the XML root element's children as keys", () => {
    const dir = configRoot({ "x.xml": '<?xml version="1.0"?><anything><a><b>2</b></a><c>text</c></anything>' });
    assert.deepEqual(parseConfigFile(path.join(dir, "x.xml"), "x.xml"), { a: { b: 2 }, c: "text" });
  });
});

describe("loadComponents", () => {
  const files = {
    "default/fetch/sources/sitestats.yaml":
      "name: sitestats\nlimiter:\n  rate: 10\n  per: 1s\nmanager:\n  base_url: https://default.example\n  timeout: 5s\n",
    "prod/fetch/sources/sitestats.yaml": "manager:\n  base_url: https://prod.example\n",
    "default/fetch/sources/traffic.json": JSON.stringify({
      name: "traffic",
      manager: { base_url: "https://t.example" },
      tags: ["a", "b"],
    }),
    "default/fetch/sources/traffic.yaml": "manager:\n  timeout: 2s\n",
    "default/fetch/sources/notes.txt": "ignored",
  };

  it("deep-merges mode over default per field and lists origins lowest first", () => {
    const dir = configRoot(files);
    const docs = loadComponents("fetch/sources", { configDir: dir, mode: "prod", env: {} });
    assert.deepEqual(
      docs.map((d) => d.name),
      ["sitestats", "traffic"],
    );
    const s = docs[0];
    assert.deepEqual(s.doc, {
      name: "sitestats",
      limiter: { rate: 10, per: "1s" },
      manager: { base_url: "https://prod.example", timeout: "5s" },
    });
    assert.deepEqual(s.origins, [
      path.join("config", "default", "fetch", "sources", "sitestats.yaml"),
      path.join("config", "prod", "fetch", "sources", "sitestats.yaml"),
    ]);
  });

  it("merges formats of one name in a folder with YAML over JSON", () => {
    const docs = loadComponents("fetch/sources", { configDir: configRoot(files), mode: "default", env: {} });
    const t = docs.find((d) => d.name === "traffic")!;
    assert.deepEqual(t.doc, {
      name: "traffic",
      manager: { base_url: "https://t.example", timeout: "2s" },
      tags: ["a", "b"],
    });
    assert.deepEqual(t.origins, [
      path.join("config", "default", "fetch", "sources", "traffic.json"),
      path.join("config", "default", "fetch", "sources", "traffic.yaml"),
    ]);
    // the mode folder is not read in default mode
    const s = docs.find((d) => d.name === "sitestats")!;
    assert.equal((s.doc.manager as Record<string, unknown>).base_url, "https://default.example");
    assert.equal(s.origins.length, 1);
  });

  it("replaces arrays instead of concatenating them", () => {
    const dir = configRoot({ "default/k/a.yaml": "list: [1, 2, 3]\n", "m/k/a.yaml": "list: [9]\n" });
    assert.deepEqual(loadComponents("k", { configDir: dir, mode: "m", env: {} })[0].doc, { list: [9] });
  });

  it("applies MACHINA_<KIND>_<NAME>_<KEY> env overrides parsed as YAML scalars and records them", () => {
    const env = {
      MACHINA_FETCH_SOURCES_SITESTATS_MANAGER_BASE_URL: "https://env.example",
      MACHINA_FETCH_SOURCES_SITESTATS_LIMITER_RATE: "25",
      MACHINA_FETCH_SOURCES_TRAFFIC_TAGS: "[x, y]",
      MACHINA_FETCH_SOURCES_SITESTATS_MANAGER_TIMEOUT: "'10'",
      MACHINA_FETCH_SOURCES_SITESTATS_NEW_KEY: "ignored: only existing leaves are overridable",
      MACHINA_FETCH_SOURCES_OTHER_NAME: "no such component",
    };
    const docs = loadComponents("fetch/sources", { configDir: configRoot(files), mode: "prod", env });
    const s = docs.find((d) => d.name === "sitestats")!;
    assert.equal((s.doc.manager as Record<string, unknown>).base_url, "https://env.example");
    assert.equal((s.doc.limiter as Record<string, unknown>).rate, 25);
    assert.equal((s.doc.manager as Record<string, unknown>).timeout, "10"); // quoted stays a string
    assert.equal("new_key" in s.doc, false);
    assert.deepEqual(s.origins.slice(2).sort(), [
      "env MACHINA_FETCH_SOURCES_SITESTATS_LIMITER_RATE",
      "env MACHINA_FETCH_SOURCES_SITESTATS_MANAGER_BASE_URL",
      "env MACHINA_FETCH_SOURCES_SITESTATS_MANAGER_TIMEOUT",
    ]);
    const t = docs.find((d) => d.name === "traffic")!;
    assert.deepEqual(t.doc.tags, ["x", "y"]);
    assert.equal(docs.length, 2);
  });

  it("keeps env values that YAML would reshape or truncate as the raw text", () => {
    const dir = configRoot({
      "default/alerts/slack.yaml": "channel: general\nheader: x\nempty: y\nflag: false\nnothing: 1\n",
    });
    const env = {
      MACHINA_ALERTS_SLACK_CHANNEL: "#alerts", // a YAML comment
      MACHINA_ALERTS_SLACK_HEADER: "Bearer: abc #1", // a YAML mapping, and a comment
      MACHINA_ALERTS_SLACK_EMPTY: "",
      MACHINA_ALERTS_SLACK_FLAG: "true",
      MACHINA_ALERTS_SLACK_NOTHING: "null",
    };
    const [c] = loadComponents("alerts", { configDir: dir, mode: "default", env });
    assert.deepEqual(c.doc, { channel: "#alerts", header: "Bearer: abc #1", empty: "", flag: true, nothing: null });
  });

  it("turns component names and camelCase or dashed keys into SCREAMING_SNAKE env names", () => {
    const dir = configRoot({
      "default/invoke/query_sets/websites_sitestats.yaml": "ledger: websites\nmaxRetries: 1\n",
    });
    const env = {
      MACHINA_INVOKE_QUERY_SETS_WEBSITES_SITESTATS_LEDGER: "others",
      MACHINA_INVOKE_QUERY_SETS_WEBSITES_SITESTATS_MAX_RETRIES: "3",
    };
    const [c] = loadComponents("invoke/query_sets", { configDir: dir, mode: "default", env });
    assert.deepEqual(c.doc, { ledger: "others", maxRetries: 3 });
  });

  it("returns nothing for a kind without folders, and names the file when one is malformed", () => {
    assert.deepEqual(loadComponents("nothing/here", { configDir: configRoot({}), mode: "prod", env: {} }), []);
    const dir = configRoot({ "default/k/bad.yaml": "a: [1\n" });
    const err = configErr(() => loadComponents("k", { configDir: dir, mode: "default", env: {} }));
    assert.equal(err.origin, path.join("config", "default", "k", "bad.yaml"));
  });
});

describe("deepMerge", () => {
  it("merges nested objects, lets `over` win and does not mutate inputs", () => {
    const base = { a: { b: 1, c: 2 }, d: [1], e: "x" };
    const over = { a: { c: 3 }, d: [2], f: null };
    assert.deepEqual(deepMerge(base, over), { a: { b: 1, c: 3 }, d: [2], e: "x", f: null });
    assert.deepEqual(base, { a: { b: 1, c: 2 }, d: [1], e: "x" });
  });
});

describe("parseDuration", () => {
  it("parses each unit into milliseconds", () => {
    assert.equal(parseDuration("250ms"), 250);
    assert.equal(parseDuration("10s"), 10_000);
    assert.equal(parseDuration("15m"), 900_000);
    assert.equal(parseDuration("1h"), 3_600_000);
    assert.equal(parseDuration("7d"), 604_800_000);
    assert.equal(parseDuration(" 1.5s "), 1500);
    assert.equal(parseDuration("2 m"), 120_000);
    assert.equal(parseDuration("0s"), 0);
  });

  it("refuses a bare number: the unit must be written", () => {
    for (const bare of [1234, 0, -1, Number.POSITIVE_INFINITY, Number.NaN])
      assert.equal(parseDuration(bare), null, String(bare));
    assert.match(durationProblem(300) ?? "", /got the bare number 300; write 300ms or 300s/);
    assert.match(durationProblem("5 mins") ?? "", /expected a duration such as 250ms, 1s, 15m, 1h or 1d, got "5 mins"/);
    assert.equal(durationProblem("5m"), null);
  });

  it("parses durations past Node's timer limit (2^31-1 ms)", () => {
    assert.equal(parseDuration("30d"), 30 * 86_400_000);
    assert.ok(parseDuration("3650d")! > 2 ** 31);
  });

  it("returns null for malformed input and fractions of a millisecond", () => {
    for (const bad of [
      "",
      "10",
      "ten s",
      "-5s",
      "5sec",
      "1h30m",
      "5S",
      "s",
      "1w",
      "0.5ms",
      null,
      undefined,
      {},
      [],
      true,
    ]) {
      assert.equal(parseDuration(bad), null, JSON.stringify(bad));
    }
  });
});

describe("formatDuration", () => {
  it("formats in the largest exact unit and round-trips through parseDuration", () => {
    assert.equal(formatDuration(86_400_000), "1d");
    assert.equal(formatDuration(1000), "1s");
    assert.equal(formatDuration(1500), "1500ms");
    assert.equal(formatDuration(900_000), "15m");
    for (const ms of [1, 250, 1000, 1500, 60_000, 3_600_000, 86_400_000])
      assert.equal(parseDuration(formatDuration(ms)), ms);
  });
});

describe("env names", () => {
  it("screamingSnake splits camelCase and replaces separators", () => {
    assert.equal(screamingSnake("baseUrl"), "BASE_URL");
    assert.equal(screamingSnake("base-url"), "BASE_URL");
    assert.equal(screamingSnake("base_url"), "BASE_URL");
    assert.equal(screamingSnake("maxInFlight"), "MAX_IN_FLIGHT");
    assert.equal(screamingSnake("http2Port"), "HTTP2_PORT");
    assert.equal(screamingSnake("web.site--x"), "WEB_SITE_X");
  });

  it("envName joins a prefix and a dotted key path", () => {
    assert.equal(envName("MACHINA_FETCH", "nats.url"), "MACHINA_FETCH_NATS_URL");
    assert.equal(envName("MACHINA", "invoke.maxInFlight"), "MACHINA_INVOKE_MAX_IN_FLIGHT");
    assert.equal(
      envName("MACHINA_FETCH_SOURCES_SITESTATS", "manager.base_url"),
      "MACHINA_FETCH_SOURCES_SITESTATS_MANAGER_BASE_URL",
    );
  });
});
