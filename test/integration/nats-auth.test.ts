// NATS users with least privilege, exercised: a nats-server of the test's own runs the
// authorization tools/nats-admin.ts generates from libs/subjects for mesh "machina", the admin
// bootstraps the shared streams and bucket, and all six services run the example config (config/)
// each as its own user, against the fake API and the test Cassandra. The pipeline works end to end
// (a timer tick to a clean row compute answers) without a single permission violation; compute
// may not publish to the FETCH stream, fetch may not write the config chain, and a wrong password
// stops a service at start with an error naming the user and what to check.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import type cassandra from "cassandra-driver";
import { MeshClient, publishDurable } from "@machina/runtime";
import { NATS_USERS, SERVICES, meshNames, passwordEnv } from "@machina/subjects";
import type { NatsUser } from "@machina/subjects";
import { expectedSite, expectedTraffic } from "../fixtures/fake-api/index";
import { adminCqlClient, dataServiceEnv } from "../support/cassandra-env";
import { startFakeApiProc, type FakeApiProc } from "../support/fake-api-proc";
import { uniquePrefix } from "../support/nats-env";
import { startOwnNats, type OwnNats } from "../support/own-nats";
import { eventually, startServiceProc, type ServiceProc } from "../support/service-procs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const PREFIX = "machina";
const names = meshNames(PREFIX);
const keyspace = `${uniquePrefix("auth")}_ks`;
const password = Object.fromEntries(NATS_USERS.map((u) => [u, `p${randomBytes(18).toString("hex")}`])) as Record<
  NatsUser,
  string
>;
const secrets = mkdtempSync(path.join(tmpdir(), "machina-nats-secrets-"));
for (const u of NATS_USERS) writeFileSync(path.join(secrets, u), `${password[u]}\n`, { mode: 0o600 });
const enc = new TextEncoder();
const dec = new TextDecoder();

function admin(args: string[], env: Record<string, string> = {}): string {
  const r = spawnSync(process.execPath, ["--import", "tsx", "tools/nats-admin.ts", ...args], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, ...env },
  });
  assert.equal(r.status, 0, `nats-admin ${args.join(" ")} failed:\n${r.stderr}`);
  return r.stdout;
}

// nats.js rejects the request with a RequestError whose cause is the server's PermissionViolationError.
const denial = (err: Error): string => {
  const cause = err.cause as Error | undefined;
  return `${err.name}: ${err.message}; ${cause?.name ?? ""}: ${cause?.message ?? ""}`;
};
// nats-server logs each denial: `… - "$G/user:compute" - Publish Violation - Subject "…"`.
const violations = (log: string) => log.split("\n").filter((l) => / - (Publish|Subscription) Violation - /.test(l));

describe("NATS users with least privilege", { timeout: 300_000 }, () => {
  let nats: OwnNats;
  let api: FakeApiProc;
  let asAdmin: NatsConnection;
  let cql: cassandra.Client;
  let serviceEnv: Record<string, string>;
  const procs: ServiceProc[] = [];
  const testStart = Date.now();

  const connectAs = (user: NatsUser, pass = password[user]) =>
    connect({
      servers: nats.url,
      user,
      pass,
      inboxPrefix: user === "admin" ? undefined : names.inbox(user),
      noAsyncTraces: true,
    });

  before(async () => {
    const auth = admin(["auth-config", "--prefix", PREFIX]);
    nats = await startOwnNats({
      extra: auth,
      env: Object.fromEntries(NATS_USERS.map((u) => [passwordEnv(u), password[u]])),
    });
    // The shared streams and the config bucket exist before any service starts, made by the admin.
    admin(["bootstrap"], {
      MACHINA_NATS_URL: nats.url,
      MACHINA_NATS_USER: "admin",
      MACHINA_NATS_PASS_FILE: path.join(secrets, "admin"),
      MACHINA_MESH_PREFIX: PREFIX,
    });
    asAdmin = await connectAs("admin");
    const c = await adminCqlClient();
    cql = c.client;
    api = await startFakeApiProc("demo-key:20/1000");
    serviceEnv = {
      ...dataServiceEnv(nats.url, PREFIX, keyspace, c.localDataCenter),
      MACHINA_LOG_LEVEL: "info",
      MACHINA_DATA_CLEAN_INTERVAL_MS: "1000",
      MACHINA_VERTEX_DASHBOARD_PORT: "0",
      SITESTATS_API_KEY: "demo-key",
      TRAFFIC_API_KEY: "demo-key",
      RANKINGS_SIGNING_SECRET: "demo-signing-secret",
      ...Object.fromEntries(
        ["SITESTATS", "TRAFFIC", "RANKINGS", "DIRECTORY"].map((s) => [
          `MACHINA_FETCH_SOURCES_${s}_MANAGER_BASE_URL`,
          api.url,
        ]),
      ),
    };
    const start = (s: string) =>
      startServiceProc(s, {
        configDir: path.join(ROOT, "config"),
        prefix: PREFIX,
        env: { ...serviceEnv, MACHINA_NATS_USER: s, MACHINA_NATS_PASS_FILE: path.join(secrets, s) },
        readyTimeoutMs: 120_000,
      });
    procs.push(await start("vertex"));
    procs.push(...(await Promise.all(SERVICES.filter((s) => s !== "vertex").map(start))));
  });

  after(async () => {
    await Promise.allSettled(procs.map((p) => p.stop()));
    await api?.stop();
    await asAdmin?.close();
    await nats?.stop();
    await cql?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => undefined);
    await cql?.shutdown();
  });

  it("runs the pipeline with every service as its own user: a tick becomes a clean row compute answers", async () => {
    const domain = "example.org";
    const row = await eventually(
      "a merged example.org from both sources",
      async () => {
        const m = await asAdmin.request(
          names.computeGet("latest"),
          enc.encode(JSON.stringify({ args: { type: "website", key: { domain } } })),
          { timeout: 10_000 },
        );
        const r = JSON.parse(dec.decode(m.data)) as { rows?: Array<Record<string, unknown>> };
        const first = r.rows?.[0];
        if (first?.title == null || first.bounce_rate == null || Date.parse(String(first.merged_at)) < testStart)
          return undefined;
        return first;
      },
      180_000,
      500,
    );
    assert.equal(row.title, expectedSite(domain).title, "title from sitestats");
    assert.equal(row.bounce_rate, expectedTraffic(domain).bounce_rate, "bounce_rate from traffic");
    // vertex heard every service (each heartbeats as its own user) and the config chain is readable.
    const nodes = JSON.parse(dec.decode((await asAdmin.request(names.vertex.nodes, enc.encode("{}"))).data)) as {
      nodes: Array<{ service: string; configHead: string }>;
    };
    assert.deepEqual([...new Set(nodes.nodes.map((n) => n.service))].sort(), [...SERVICES].sort());
    assert.ok(
      nodes.nodes.every((n) => n.configHead !== ""),
      "every instance follows the config chain",
    );
    // The example's incremental query (the changes trigger, at start): a paginated task's closing
    // batch goes from fetch to STORE, and data moves the cursor in fetch's bucket.
    const cursor = await eventually(
      "the news cursor of sitestats.changes moved",
      async () => {
        const m = await asAdmin.request(
          names.fetch.cursors,
          enc.encode(JSON.stringify({ source: "sitestats", query: "changes", lead: "news" })),
          { timeout: 10_000 },
        );
        const c = (JSON.parse(dec.decode(m.data)) as { cursors?: Array<{ stored: boolean; value: string }> })
          .cursors?.[0];
        return c?.stored === true ? c : undefined;
      },
      60_000,
      500,
    );
    assert.ok(cursor.value > "2024-01-01T00:00:00Z", `moved past the initial value: ${cursor.value}`);
    assert.deepEqual(violations(nats.log()), [], "no service needed more than its permissions");
    for (const p of procs)
      assert.doesNotMatch(p.output(), /Permissions Violation/i, `${p.service} hit a denied subject`);
  });

  it("takes a live config patch: vertex writes the chain, every service follows, fetch makes the new source's consumer", async () => {
    const client = new MeshClient(asAdmin);
    const head = async () =>
      (await client.request(names.config.get, "ConfigGetRequest", { path: "" }, "ConfigDocument")).head;
    const directory = await client.request(
      names.config.get,
      "ConfigGetRequest",
      { path: "/fetch/sources/directory" },
      "ConfigDocument",
    );
    const p = await client.request(
      names.config.patch,
      "ConfigPatchRequest",
      {
        parent: await head(),
        ops: [
          { op: "add", path: "/fetch/sources/shop", value: { ...(directory.value as object), name: "shop" } },
        ] as never,
        author: "auth test",
      },
      "ConfigPatch",
    );
    await eventually(
      "every instance at the new head",
      async () => {
        const n = await client.request(names.vertex.nodes, "Empty", {}, "NodeList");
        return n.nodes.length >= SERVICES.length && n.nodes.every((x) => x.configHead === p.hash) ? true : undefined;
      },
      60_000,
      200,
    );
    const sources = await client.request(names.fetch.sources, "Empty", {}, "SourcesReply");
    assert.ok(
      sources.sources.some((x) => x.name === "shop"),
      "fetch runs the new source",
    );
    const jsm = await jetstreamManager(asAdmin);
    await eventually(
      "fetch-shop on FETCH",
      async () =>
        (await jsm.consumers.info(names.streams.FETCH, names.consumers.fetch("shop")).catch(() => null)) ?? undefined,
    );
    // vertex's own reads of the mesh: stats, scaling advice, the dead-letter desk.
    await client.request(names.vertex.scale, "Empty", {}, "ScaleReply");
    await client.request(names.vertex.dlq.list, "DeadLetterListRequest", { limit: 10 }, "DeadLetterListReply");
    assert.deepEqual(violations(nats.log()), [], "no service needed more than its permissions");
  });

  it("dead letters: data parks a batch it cannot store, vertex lists, replays and purges it", async () => {
    const client = new MeshClient(asAdmin);
    const batch = {
      id: "auth-poison",
      type: "gadget",
      source: "manual",
      query: "t",
      taskId: "auth-poison",
      records: [{ name: "x" }],
      fetchedAt: Date.now(),
      firstSeq: 0,
    };
    await publishDurable(
      jetstream(asAdmin),
      names.task.store("gadget"),
      "RecordBatches",
      { batches: [batch] },
      {
        msgID: "auth-poison",
      },
    );
    const listed = await eventually("the dead letter", async () => {
      const r = await client.request(
        names.vertex.dlq.list,
        "DeadLetterListRequest",
        { limit: 5 },
        "DeadLetterListReply",
      );
      return r.total >= 1 ? r : undefined;
    });
    assert.equal(listed.letters[0].code, "NOT_FOUND");
    const seq = listed.letters[0].seq;
    const shown = await client.request(names.vertex.dlq.show, "DeadLetterShowRequest", { seq }, "DeadLetterShowReply");
    assert.equal(shown.subject, names.task.store("gadget"));
    const replayed = await client.request(
      names.vertex.dlq.replay,
      "DeadLetterFilter",
      { seqs: [seq] },
      "DeadLetterReplayReply",
    );
    assert.equal(replayed.replayed, 1, "vertex republished it to STORE");
    // data parks it again; purge removes every letter.
    await eventually("parked again", async () => {
      const r = await client.request(names.vertex.dlq.list, "DeadLetterListRequest", {}, "DeadLetterListReply");
      return r.total >= 1 ? r : undefined;
    });
    const purged = await client.request(names.vertex.dlq.purge, "DeadLetterFilter", {}, "DeadLetterPurgeReply");
    assert.ok(purged.purged >= 1);
    assert.deepEqual(violations(nats.log()), [], "no service needed more than its permissions");
  });

  it("compute may not publish to the FETCH stream", async () => {
    const jsm = await jetstreamManager(asAdmin);
    const before = (await jsm.streams.info(names.streams.FETCH)).state.last_seq;
    const nc = await connectAs("compute");
    try {
      const subject = names.task.fetch("sitestats", "site", "intruder.example");
      await assert.rejects(jetstream(nc).publish(subject, enc.encode("{}")), (err: Error) => {
        assert.match(
          denial(err),
          new RegExp(`Permissions Violation for Publish to "${subject.replace(/\./g, "\\.")}"`),
        );
        return true;
      });
      // What compute needs still works on the same connection: reading clean data.
      const m = await nc.request(
        names.data("readone", "clean", "website"),
        enc.encode(JSON.stringify({ key: { domain: "example.org" } })),
        { timeout: 10_000 },
      );
      assert.ok((JSON.parse(dec.decode(m.data)) as { record?: unknown }).record, "compute reads clean records");
    } finally {
      await nc.close();
    }
    assert.equal((await jsm.streams.info(names.streams.FETCH)).state.last_seq, before, "nothing was stored");
    assert.ok(
      violations(nats.log()).some((l) => l.includes('"$G/user:compute"') && l.includes("machina.task.fetch.")),
      "the server logged compute's denied publish",
    );
  });

  it("fetch may read the config chain but not write it", async () => {
    const nc = await connectAs("fetch");
    try {
      const kv = await new Kvm(nc).open(names.buckets.config);
      assert.equal(await kv.get("head.nothing"), null, "fetch reads the chain (it follows live config)");
      await assert.rejects(kv.put("head.nothing", enc.encode('{"head":"x","length":1}')), (err: Error) => {
        assert.match(denial(err), /Permissions Violation for Publish to "\$KV\.machina_config\.head\.nothing"/);
        return true;
      });
    } finally {
      await nc.close();
    }
    const kv = await new Kvm(asAdmin).open(names.buckets.config);
    assert.equal(await kv.get("head.nothing"), null, "the chain was not written");
  });

  it("refuses a wrong password and a missing user at start, naming the user and what to check", async () => {
    const wrong = "not-the-password-" + randomBytes(4).toString("hex");
    const start = (env: Record<string, string>) =>
      startServiceProc("compute", {
        configDir: path.join(ROOT, "config"),
        prefix: PREFIX,
        env: { ...serviceEnv, ...env },
        readyTimeoutMs: 60_000,
      });
    await assert.rejects(start({ MACHINA_NATS_USER: "compute", MACHINA_NATS_PASS: wrong }), (err: Error) => {
      assert.match(err.message, /compute failed to start: NATS at nats:\/\/127\.0\.0\.1:\d+ refused user "compute"/);
      assert.match(err.message, /Authorization Violation/i);
      assert.match(err.message, /check nats\.user and nats\.pass or nats\.passFile/);
      assert.ok(!err.message.includes(wrong), "the password is never printed");
      return true;
    });
    await assert.rejects(start({}), /refused a connection without a user .*: the server requires one; set nats\.user/s);
  });
});
