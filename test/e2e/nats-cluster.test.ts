// Clustered NATS, exercised: a 3-node JetStream cluster on loopback ports (test/harness/
// nats-cluster.sh), fetch (2 replicas), invoke, aggregate and data as separate processes given all
// three URLs, with MACHINA_NATS_REPLICAS=3. Every stream, durable consumer and KV bucket they make
// is R3. A flow through two rationed sources loses one nats-server to kill -9 in the middle and
// gets it back later: every record is stored exactly once, the services reconnect on their own
// (same processes, healthy, connected again), and neither source's quota is exceeded in any
// interval at the upstream.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Kvm } from "@nats-io/kv";
import { ServerClock } from "@machina/fetch";
import { describeTally } from "../support/flow-rows";
import { PipelineFlow } from "../support/pipeline-flow";
import { eventually } from "../support/eventually";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SCRIPT = path.join(ROOT, "test/harness/nats-cluster.sh");
// The cluster's state lives under the test state dir, beside the single test server's.
const ENV = { ...process.env, MACHINA_STATE: process.env.MACHINA_STATE ?? path.join(ROOT, ".machina/test") };
const LEADS = 200;
// Two rationed sources: the fast one is done within seconds, the slow one keeps the flow going
// for ~25 s, across the outage.
const FAST_Q = 40;
const SLOW_Q = 8;
const PLAN = { data: 1, aggregate: 1, invoke: 1, fetch: 2 };
// nats-cluster.sh's monitor ports: this + 0, 1, 2.
const MONITOR_BASE = Number(process.env.MACHINA_NATS_CLUSTER_MONITOR_PORT ?? 28222);

function cluster(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile("bash", [SCRIPT, ...args], { env: ENV, timeout: 120_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`nats-cluster.sh ${args.join(" ")}: ${stderr}`)) : resolve(stdout),
    ),
  );
}

/** Client connections of one node by name (`<service>:<host>-<pid>`), from its monitor port. */
async function connectionsOf(node: number): Promise<string[]> {
  const r = await fetch(`http://127.0.0.1:${MONITOR_BASE + node - 1}/connz?limit=1024`);
  const body = (await r.json()) as { connections?: Array<{ name?: string }> };
  return (body.connections ?? []).map((c) => c.name ?? "");
}

describe("a 3-node NATS cluster losing a node mid-flow", { timeout: 240_000 }, () => {
  let flow: PipelineFlow | undefined;
  let pids: Map<string, number>;
  // The cluster goes away with the test process, however it ends.
  const stopSync = () => {
    try {
      execFileSync("bash", [SCRIPT, "stop"], { env: ENV, stdio: "ignore", timeout: 60_000 });
    } catch {
      // best effort; the after hook reports failures
    }
  };

  before(async () => {
    process.once("exit", stopSync);
    await cluster("start");
    const urls = (await cluster("urls")).trim();
    flow = await PipelineFlow.start({
      leads: LEADS,
      replicas: PLAN,
      label: "cluster",
      // One at a time: the first creates the R3 streams and buckets, whose raft groups a busy
      // 2-core machine forms slowly, and a JetStream request of a start-up times out after 5 s.
      parallel: 1,
      natsUrl: urls,
      env: { MACHINA_NATS_REPLICAS: "3", MACHINA_LOG_LEVEL: process.env.MACHINA_TEST_LOG_LEVEL ?? "info" },
      sources: [
        { name: "fastsrc", limiter: `{ windows: [{ limit: ${FAST_Q}, per: 1s }] }`, keyEnv: "FAST_KEY" },
        { name: "slowsrc", limiter: `{ windows: [{ limit: ${SLOW_Q}, per: 1s }] }`, keyEnv: "SLOW_KEY" },
      ],
      // Rolling upstream windows that refuse the (Q+1)-th call in any second.
      apiKeys: `key-fast:${FAST_Q}/1000/rolling,key-slow:${SLOW_Q}/1000/rolling`,
      keyOf: (s) => (s === "fastsrc" ? "key-fast" : "key-slow"),
    });
    pids = new Map(flow.replicas.map((r) => [r.label, r.child.pid ?? -1]));
  });

  after(async () => {
    if (process.env.MACHINA_TEST_VERBOSE)
      for (const r of flow?.replicas ?? []) process.stderr.write(`--- ${r.label}\n${r.output().slice(-4000)}\n`);
    try {
      await flow?.close();
    } finally {
      await cluster("stop");
      process.removeListener("exit", stopSync);
    }
  });

  it("every stream, durable consumer and KV bucket of the network is R3", async () => {
    const { nc, jsm } = flow!.connection;
    const problems: string[] = [];
    for (const s of Object.values(flow!.names.streams)) {
      const info = await jsm.streams.info(s);
      if (info.config.num_replicas !== 3) problems.push(`stream ${s}: R${info.config.num_replicas}`);
      for await (const c of jsm.consumers.list(s)) {
        // A consumer without its own count runs on its stream's peers; the leader plus two.
        const peers = 1 + (c.cluster?.replicas?.length ?? 0);
        if (peers !== 3) problems.push(`consumer ${s}/${c.name}: ${peers} peers`);
      }
    }
    // Every KV bucket of the network (those of features this flow does not use need not exist).
    const buckets = new Set<string>();
    for await (const info of jsm.streams.list())
      if (info.config.name.startsWith(`KV_${flow!.prefix}_`)) buckets.add(info.config.name.slice(3));
    const kvm = new Kvm(nc);
    for (const b of buckets) {
      const status = await (await kvm.open(b)).status();
      if (status.replicas !== 3) problems.push(`bucket ${b}: R${status.replicas}`);
    }
    const { buckets: all } = flow!.names;
    const used = [all.limiter, all.config, all.cleanLeases, all.fetchPages, all.aggregateState, all.aggregateLeases];
    for (const b of [...used, all.invokeLedgers, all.invokeTicks])
      if (!buckets.has(b)) problems.push(`bucket ${b} was not created`);
    assert.deepEqual(problems, []);
  });

  it("the limiter's server clock bounds hold on R3, where any replica answers a read", async () => {
    // Direct gets of an R3 bucket are answered by any peer, and one may not have the write just
    // acknowledged yet; a sample read from it would carry the previous write's stamp.
    const kv = await new Kvm(flow!.connection.nc).create(`${flow!.prefix}_clockcheck`, { history: 1, replicas: 3 });
    const clock = new ServerClock(kv, { probeEveryMs: 3_600_000 });
    const wrong: string[] = [];
    try {
      for (let i = 0; i < 150; i++) {
        await clock.probe();
        // The servers run on this machine: server time is this process's wall clock.
        const truth = Date.now() - clock.local();
        if (!clock.ready()) continue;
        const b = clock.bounds();
        // Stamps are whole milliseconds and the two local clocks differ by a little.
        if (truth < b.low - 3 || truth > b.high + 3)
          wrong.push(`probe ${i}: ${truth.toFixed(1)} not in [${b.low.toFixed(1)}, ${b.high.toFixed(1)}]`);
        await new Promise((r) => setTimeout(r, 30));
      }
    } finally {
      await clock.close();
      await kv.destroy();
    }
    assert.deepEqual(wrong.slice(0, 5), []);
    assert.ok(clock.ready());
  });

  it("kill -9 of a node mid-flow and its return: all stored once, services reconnected, quotas held", async (t) => {
    const f = flow!;
    const { jsm } = f.connection;
    // The node most services talk to, so reconnecting is exercised; it leads some streams too.
    const byNode = await Promise.all([1, 2, 3].map((n) => connectionsOf(n)));
    const serviceConns = byNode.map((names) => names.filter((n) => /^(fetch|invoke|aggregate|data):/.test(n)));
    const victim = 1 + serviceConns.reduce((best, c, i) => (c.length > serviceConns[best].length ? i : best), 0);
    const leaders: string[] = [];
    for (const s of [...Object.values(f.names.streams), ...Object.values(f.names.buckets).map((b) => `KV_${b}`)]) {
      const info = await jsm.streams.info(s).catch(() => undefined);
      if (info?.cluster?.leader === `machina-c${victim}`) leaders.push(s);
    }
    t.diagnostic(
      `victim node ${victim}: services ${serviceConns[victim - 1].join(" ")}; leader of ${leaders.join(" ") || "none"}`,
    );

    const fired = await f.fire();
    assert.equal(fired.tasks, LEADS * 2);
    // In the middle: once a quarter of the rows are stored.
    await eventually(
      "a quarter of the rows stored",
      async () => ((await f.rows()).dump.rows >= f.expectedDump / 4 ? true : undefined),
      90_000,
      200,
    );
    await cluster("kill", String(victim));
    const killedAt = Date.now();
    // While the node is down the other two keep the flow going.
    const atKill = (await f.rows()).dump.rows;
    const during = await eventually(
      "progress without the killed node",
      async () => {
        const r = await f.rows();
        return r.dump.rows > atKill + 10 ? r : undefined;
      },
      60_000,
      500,
    );
    const progressMs = Date.now() - killedAt;
    await new Promise((r) => setTimeout(r, Math.max(0, 8_000 - (Date.now() - killedAt))));
    await cluster("start", String(victim));
    t.diagnostic(
      `down ${Date.now() - killedAt} ms; dump rows ${atKill} at the kill, ${during.dump.rows} ${progressMs} ms after it`,
    );

    const rows = await f.settle(120_000);
    const upstream = await f.upstream.stats();
    t.diagnostic(`dump: ${describeTally(rows.dump)}; clean: ${describeTally(rows.clean)}`);
    t.diagnostic(
      `upstream: most calls in any 1 s ${JSON.stringify(upstream.maxPerInterval)} (quotas ${FAST_Q}, ${SLOW_Q}); calls ${JSON.stringify(upstream.byKey)} for ${LEADS} leads each; statuses ${JSON.stringify(upstream.byStatus)}`,
    );

    assert.equal(rows.dump.missing, 0, `dump rows missing: ${describeTally(rows.dump)}`);
    assert.deepEqual(rows.dump.duplicated, [], "no record stored twice");
    assert.equal(rows.dump.rows, f.expectedDump);
    // A lead's two answers may fall into two clean windows (the flow crossing an hour), never fewer than one.
    assert.equal(rows.clean.missing, 0, `clean rows missing: ${describeTally(rows.clean)}`);
    assert.equal(rows.clean.entities, LEADS);
    assert.equal((await jsm.streams.info(f.names.streams.DLQ)).state.messages, 0, "nothing dead-lettered");

    // The same processes, healthy and ready, each connected to a live node again.
    for (const r of f.replicas) {
      assert.equal(r.child.pid, pids.get(r.label), `${r.label} was restarted`);
      assert.equal(r.child.exitCode, null, `${r.label} exited`);
      assert.equal((await fetch(`http://127.0.0.1:${r.probePort}/healthz`)).status, 200, `${r.label} /healthz`);
    }
    let notReady: string[] = [];
    await eventually(
      "every replica ready",
      async () => {
        notReady = [];
        for (const r of f.replicas) {
          const res = await fetch(`http://127.0.0.1:${r.probePort}/readyz`);
          if (res.status !== 200) {
            // What it said lately (warnings and worse, and how its workers paused or resumed),
            // so a failure here can be read; MACHINA_TEST_LOG_LEVEL=debug says more.
            const said = r
              .output()
              .split("\n")
              .filter((l) => /"level":(40|50|60)/.test(l) || /"msg":"(worker resumed|a pull got no end)/.test(l))
              .slice(-12)
              .join("\n");
            notReady.push(`${r.label}: ${res.status} ${await res.text()}\n${said}`);
          }
        }
        return notReady.length === 0 ? true : undefined;
      },
      30_000,
    ).catch((err: Error) => assert.fail(`${err.message}: ${notReady.join("; ")}`));
    const connected = (await Promise.all([1, 2, 3].map((n) => connectionsOf(n)))).flat();
    for (const r of f.replicas)
      assert.ok(
        connected.some((n) => n.startsWith(`${r.service}:`) && n.endsWith(`-${r.child.pid}`)),
        `${r.label} (pid ${r.child.pid}) is connected to no node`,
      );

    // Quotas at the upstream: no second ever saw more calls than a source's quota, none refused.
    assert.ok(
      upstream.maxPerInterval["key-fast"] <= FAST_Q,
      `fast source: ${upstream.maxPerInterval["key-fast"]} in 1 s`,
    );
    assert.ok(
      upstream.maxPerInterval["key-slow"] <= SLOW_Q,
      `slow source: ${upstream.maxPerInterval["key-slow"]} in 1 s`,
    );
    assert.equal(upstream.byStatus["429"] ?? 0, 0, "no call was refused by the upstream");
  });

  it("the node that came back catches up: every stream has its three peers current again", async () => {
    const { jsm } = flow!.connection;
    await eventually(
      "all replicas current",
      async () => {
        for (const s of Object.values(flow!.names.streams)) {
          const info = await jsm.streams.info(s);
          const peers = info.cluster?.replicas ?? [];
          if (peers.length !== 2 || peers.some((p) => !p.current || p.offline)) return undefined;
        }
        return true;
      },
      60_000,
      500,
    );
  });
});
