// The pipeline under pressure, with every hop a real process against the real servers: a source
// over its quota never stalls another, the backlog keeps one task per (source, query, lead), and
// a Cassandra outage or a nats-server restart delays work without losing or duplicating any.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import cassandra from "cassandra-driver";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { FetchTask } from "@machina/protos";
import { publishTasks } from "@machina/invoke";
import { meshNames } from "@machina/subjects";
import { startFakeApi, type FakeApi } from "../fixtures/fake-api/server";
import { NATS_URL, uniquePrefix } from "../support/nats-env";
import { eventually, readyz, startServiceProc, writeConfig, type ServiceProc } from "../support/service-procs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const prefix = uniquePrefix("press");
const names = meshNames(prefix);
const keyspace = `${prefix}_ks`;
const CQL_PORT = Number(process.env.MACHINA_CQL_PORT ?? 19042);

function harness(script: "cassandra" | "nats", cmd: "start" | "stop"): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile("bash", [path.join(ROOT, `test/harness/${script}.sh`), cmd], { timeout: 240_000 }, (err, _o, stderr) =>
      err ? reject(new Error(`${script}.sh ${cmd}: ${stderr}`)) : resolve(),
    );
  });
}

function sourceYaml(name: string, limiter: string, baseUrl: string, keyEnv: string): string {
  return [
    `name: ${name}`,
    `limiter: ${limiter}`,
    `data:`,
    `  api_key: { env: ${keyEnv} }`,
    `manager:`,
    `  type: http-auth`,
    `  base_url: ${baseUrl}`,
    `  timeout: 10s`,
    `  auth: { type: api_key, header: X-Api-Key, value: "{{data.api_key}}" }`,
    `  retries: { max: 2, base_delay: 100ms }`,
    `queries:`,
    `  site:`,
    `    path: /v3/sites/{{lead.domain}}`,
    `    extract:`,
    `      site: { type: website, path: site }`,
    ``,
  ].join("\n");
}

function tasks(source: string, domains: string[], tick: number): FetchTask[] {
  return domains.map((d) => ({
    id: `${source}@${tick}/${d}`,
    source,
    query: "site",
    lead: { id: d, args: { domain: d } },
    trigger: "test",
    tick,
    createdAt: Date.now(),
    querySet: `qs-${source}`,
  }));
}

const domains = (tag: string, n: number) => Array.from({ length: n }, (_, i) => `${tag}-${i}.test`);

describe("pipeline under pressure", { timeout: 600_000 }, () => {
  let api: FakeApi;
  let nc: NatsConnection;
  let cql: cassandra.Client;
  const procs: ServiceProc[] = [];
  const byName = new Map<string, ServiceProc>();

  // Dump rows by source: how many, and how many distinct entities.
  async function dump(source: string): Promise<{ rows: number; keys: number; dupes: number }> {
    const seen = new Map<string, number>();
    let page: string | undefined;
    do {
      const rs = await cql.execute(`SELECT domain, source FROM ${keyspace}.dump_website`, [], {
        fetchSize: 5000,
        pageState: page,
        prepare: true,
      });
      for (const r of rs.rows)
        if (r.source === source) seen.set(r.domain as string, (seen.get(r.domain as string) ?? 0) + 1);
      page = rs.pageState ?? undefined;
    } while (page);
    const rows = [...seen.values()].reduce((a, b) => a + b, 0);
    return { rows, keys: seen.size, dupes: rows - seen.size };
  }

  const dlqCount = async () => (await (await jetstreamManager(nc)).streams.info(names.streams.DLQ)).state.messages;

  before(async () => {
    api = await startFakeApi({
      port: 0,
      keys: {
        "key-fast": { limit: 100, windowMs: 1000 },
        "key-slow": { limit: 5, windowMs: 60_000 },
        "key-free": { limit: 1_000_000, windowMs: 1000 },
        "key-low": { limit: 2, windowMs: 1000 },
      },
    });
    const configDir = writeConfig({
      "fetch/sources/fastsrc.yaml": sourceYaml(
        "fastsrc",
        "{ windows: [{ limit: 100, per: 1s }] }",
        api.url,
        "FAST_KEY",
      ),
      "fetch/sources/slowsrc.yaml": sourceYaml("slowsrc", "{ windows: [{ limit: 5, per: 1m }] }", api.url, "SLOW_KEY"),
      "fetch/sources/freesrc.yaml": sourceYaml("freesrc", "unlimited", api.url, "FREE_KEY"),
      "fetch/sources/lowsrc.yaml": sourceYaml("lowsrc", "{ windows: [{ limit: 2, per: 1s }] }", api.url, "LOW_KEY"),
      "aggregate/aggregators/website.yaml": "aggregator: passthrough\n",
    });
    const env = {
      FAST_KEY: "key-fast",
      SLOW_KEY: "key-slow",
      FREE_KEY: "key-free",
      LOW_KEY: "key-low",
      MACHINA_DATA_CASSANDRA_KEYSPACE: keyspace,
      MACHINA_DATA_CLEAN_INTERVAL_MS: "0",
      MACHINA_INVOKE_SCHEDULER: "false",
    };
    for (const s of ["data", "aggregate", "invoke", "fetch"]) {
      const p = await startServiceProc(s, { configDir, prefix, env });
      procs.push(p);
      byName.set(s, p);
    }
    nc = await connect({ servers: NATS_URL, maxReconnectAttempts: -1 });
    cql = new cassandra.Client({ contactPoints: [`127.0.0.1:${CQL_PORT}`], localDataCenter: "datacenter1" });
    await cql.connect();
  });

  after(async () => {
    if (process.env.MACHINA_TEST_VERBOSE)
      for (const p of procs) process.stderr.write(`--- ${p.service}\n${p.output().slice(-4000)}\n`);
    await Promise.allSettled(procs.map((p) => p.stop()));
    await api?.close();
    await cql?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => undefined);
    await cql?.shutdown();
    const jsm = nc ? await jetstreamManager(nc) : null;
    for (const s of Object.values(names.streams)) await jsm?.streams.delete(s).catch(() => undefined);
    await nc?.close();
  });

  it("a source over its quota does not stall another: all of A is stored in about A's own quota time", async (t) => {
    const js = jetstream(nc);
    const n = 1500;
    // B (5 per minute) is published first, as in the report that found the stall.
    await publishTasks(js, names, tasks("slowsrc", domains("b", n), 1), 64, "test");
    const t0 = Date.now();
    await publishTasks(js, names, tasks("fastsrc", domains("a", n), 1), 64, "test");
    const done = await eventually(
      "all of A's records in the dump",
      async () => {
        const d = await dump("fastsrc");
        if (process.env.MACHINA_TEST_VERBOSE) {
          const m = await (await fetch(`http://127.0.0.1:${byName.get("fetch")!.probePort}/metrics`)).text();
          const lines = m
            .split("\n")
            .filter((l) => /fastsrc|limiter|lag/.test(l) && !l.startsWith("#") && !/bucket/.test(l));
          t.diagnostic(
            `${Date.now() - t0} ms: A ${d.keys}, upstream ${JSON.stringify(api.stats().byKey)} ${lines.join(" | ")}`,
          );
        }
        return d.keys >= n ? Date.now() - t0 : undefined;
      },
      60_000,
      1000,
    );
    const a = await dump("fastsrc");
    const b = await dump("slowsrc");
    const stats = api.stats();
    t.diagnostic(
      `A: ${a.rows} rows in ${done} ms (its quota alone needs ${(n / 100).toFixed(0)} s); B: ${b.rows} rows meanwhile; upstream most per rolling interval: ${JSON.stringify(stats.maxPerInterval)}`,
    );
    assert.equal(a.keys, n);
    assert.equal(a.dupes, 0);
    // 1,500 at 100/s is 15 s of quota; the pipeline may add seconds (more on a loaded machine),
    // but a stall behind B would cost B's whole minute.
    assert.ok(done < 45_000, `A took ${done} ms`);
    assert.ok(b.rows >= 1 && b.rows <= 10, `B progresses at its own quota: ${b.rows} rows`);
    assert.ok(
      stats.maxPerInterval["key-fast"] <= 100,
      `A's upstream saw ${stats.maxPerInterval["key-fast"]} in one second`,
    );
    assert.ok(stats.maxPerInterval["key-slow"] <= 5);
    assert.equal(stats.byStatus["429"] ?? 0, 0, "no call was refused by an upstream");
  });

  it("demand above quota keeps at most one queued task per (source, query, lead), and supersession is counted", async () => {
    const js = jetstream(nc);
    const leads = domains("low", 40);
    const results = [];
    for (let tick = 1; tick <= 4; tick++)
      results.push(await publishTasks(js, names, tasks("lowsrc", leads, tick), 64, "test"));
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(names.streams.FETCH, { subjects_filter: names.task.fetchOf("lowsrc") });
    const perSubject = Object.values(info.state.subjects ?? {});
    assert.ok(perSubject.length <= leads.length, `${perSubject.length} subjects for ${leads.length} leads`);
    assert.ok(
      perSubject.every((c) => c === 1),
      `a (source, query, lead) holds ${Math.max(...perSubject)} tasks`,
    );
    const superseded = results.slice(1).reduce((n, r) => n + r.superseded, 0);
    // lowsrc admits 2 per second, so nearly every later tick's task replaced a queued one.
    assert.ok(superseded >= 3 * leads.length - 20, `only ${superseded} superseded`);
    assert.equal(results[0].superseded, 0);
    // The consumer lag of the source is what a scaler reads. One CI run read it above the held
    // subjects right after the last publish (the cause is not pinned down; a filtered consumer's
    // count after per-subject removals is the suspect), so it gets up to 5 s to settle.
    let c = await jsm.consumers.info(names.streams.FETCH, names.consumers.fetch("lowsrc"));
    for (let i = 0; i < 50 && c.num_pending > leads.length; i++) {
      await new Promise((r) => setTimeout(r, 100));
      c = await jsm.consumers.info(names.streams.FETCH, names.consumers.fetch("lowsrc"));
    }
    assert.ok(
      c.num_pending <= leads.length,
      `${c.num_pending} pending for ${leads.length} leads (${perSubject.length} subjects held, ${c.num_ack_pending} delivered and unacked)`,
    );
    const metrics = await (await fetch(`http://127.0.0.1:${byName.get("fetch")!.probePort}/metrics`)).text();
    assert.match(metrics, new RegExp(`machina_consumer_pending\\{[^}]*consumer="fetch-lowsrc"`));
    // Drop the rest of the backlog so later tests have the fetch replica to themselves.
    await jsm.streams.purge(names.streams.FETCH, { filter: names.task.fetchOf("lowsrc") });
  });

  it("a 60 s Cassandra outage mid-flow: work waits, /readyz names cassandra, then every record is stored exactly once and nothing is dead-lettered", async (t) => {
    const js = jetstream(nc);
    const n = 1500;
    const dlqBefore = await dlqCount();
    await publishTasks(js, names, tasks("freesrc", domains("c", n), 1), 64, "test");
    await eventually(
      "some records stored",
      async () => ((await dump("freesrc")).rows > 50 ? true : undefined),
      60_000,
      200,
    );
    await harness("cassandra", "stop");
    const stoppedAt = Date.now();
    try {
      const waiting = await eventually(
        "data /readyz naming cassandra",
        async () => {
          const r = await readyz(byName.get("data")!);
          return r.status === 503 && "cassandra" in r.waitingFor ? r : undefined;
        },
        30_000,
      );
      t.diagnostic(`data waits for: ${JSON.stringify(waiting.waitingFor)}`);
      await new Promise((r) => setTimeout(r, Math.max(0, 60_000 - (Date.now() - stoppedAt))));
      assert.equal(await dlqCount(), dlqBefore, "nothing was dead-lettered during the outage");
    } finally {
      await harness("cassandra", "start");
    }
    await cql.shutdown();
    cql = new cassandra.Client({ contactPoints: [`127.0.0.1:${CQL_PORT}`], localDataCenter: "datacenter1" });
    await cql.connect();
    const back = Date.now();
    const c = await eventually(
      "every record stored",
      async () => {
        const d = await dump("freesrc");
        return d.keys >= n ? d : undefined;
      },
      180_000,
      1000,
    );
    t.diagnostic(`all ${n} stored ${Date.now() - back} ms after Cassandra returned; rows ${c.rows}`);
    assert.equal(c.keys, n);
    assert.equal(c.dupes, 0, "no record stored twice");
    await eventually(
      "data ready again",
      async () => ((await readyz(byName.get("data")!)).status === 200 ? true : undefined),
      30_000,
    );
    assert.equal(await dlqCount(), dlqBefore);
  });

  it("a nats-server restart mid-flow loses and duplicates nothing", async (t) => {
    const js = jetstream(nc);
    const n = 1500;
    const dlqBefore = await dlqCount();
    const base = (await dump("freesrc")).keys;
    await publishTasks(js, names, tasks("freesrc", domains("d", n), 1), 64, "test");
    await eventually(
      "some records stored",
      async () => ((await dump("freesrc")).rows > base + 50 ? true : undefined),
      60_000,
      200,
    );
    await harness("nats", "stop");
    await new Promise((r) => setTimeout(r, 3_000));
    await harness("nats", "start");
    const back = Date.now();
    const d = await eventually(
      "every record stored",
      async () => {
        const x = await dump("freesrc");
        return x.keys >= base + n ? x : undefined;
      },
      180_000,
      1000,
    );
    t.diagnostic(`all stored ${Date.now() - back} ms after nats-server returned`);
    assert.equal(d.keys, base + n);
    assert.equal(d.dupes, 0, "no record stored twice");
    assert.equal(await eventually("DLQ readable", () => dlqCount(), 30_000), dlqBefore, "nothing dead-lettered");
  });
});
