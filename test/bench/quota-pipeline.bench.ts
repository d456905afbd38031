// Quota invariant through the pipeline (make bench): four fetch replicas as processes — one with
// its clock 500 ms ahead, one 500 ms behind, one behind a slow link to NATS — fetch for one
// source of Q calls per 1 s from an upstream (its own process) that counts every 1 s interval.
// Prints the most calls in any interval (must be <= Q) and the utilisation (target >= 90 %).
// Then the isolation scenario at the fetch stage: how long 1,500 tasks of a 100/s source take
// alone (baseline) and behind 1,500 queued tasks of a 5-per-minute source (ratio ~1 = isolated).
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { FetchTask } from "@machina/protos";
import { publishTasks } from "@machina/invoke";
import { meshNames } from "@machina/subjects";
import { startFakeApiProc } from "../support/fake-api-proc";
import { NATS_URL, uniquePrefix } from "../support/nats-env";
import { skewedFetchReplicas, startServiceProc, writeConfig, type ServiceProc } from "../support/service-procs";
import { startTcpProxy } from "../support/tcp-proxy";

const Q = Number(process.env.BENCH_QUOTA ?? 20);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 30);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function source(name: string, limiter: string, url: string, keyEnv: string): string {
  return [
    `name: ${name}`,
    `limiter: ${limiter}`,
    `data: { api_key: { env: ${keyEnv} } }`,
    `manager: { type: http-auth, base_url: "${url}", timeout: 10s, auth: { type: api_key, header: X-Api-Key, value: "{{data.api_key}}" }, retries: { max: 0 } }`,
    `queries: { site: { path: "/v3/sites/{{lead.domain}}", extract: { site: { type: website, path: site } } } }`,
    "",
  ].join("\n");
}

function tasks(src: string, n: number, tag: string): FetchTask[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `${tag}/${i}`,
    source: src,
    query: "site",
    lead: { id: `${tag}${i}.test`, args: { domain: `${tag}${i}.test` } },
    trigger: "bench",
    tick: 1,
    createdAt: Date.now(),
    querySet: "qs",
  }));
}

async function main(): Promise<void> {
  const api = await startFakeApiProc(
    `key-q:${Q}/1000/rolling,key-a:100/1000/rolling,key-b:5/60000/rolling,warm-key:100000/1000`,
  );
  for (let i = 0; i < 50; i++)
    await (await fetch(`${api.url}/v3/sites/w${i}.test`, { headers: { "X-Api-Key": "warm-key" } })).text();
  const natsPort = Number(new URL(NATS_URL.replace("nats://", "http://")).port);
  const proxy = await startTcpProxy({ targetPort: natsPort, delayMs: 30 });
  const nc = await connect({ servers: NATS_URL });
  const procs: ServiceProc[] = [];
  const prefixes: string[] = [];
  try {
    // 1. The quota invariant with four replicas.
    const prefix = uniquePrefix("bq");
    prefixes.push(prefix);
    const names = meshNames(prefix);
    const configDir = writeConfig({
      "fetch/sources/qsrc.yaml": source("qsrc", `{ windows: [{ limit: ${Q}, per: 1s }] }`, api.url, "Q_KEY"),
    });
    for (const env of skewedFetchReplicas(proxy.port))
      procs.push(await startServiceProc("fetch", { configDir, prefix, env: { Q_KEY: "key-q", ...env } }));
    await publishTasks(jetstream(nc), names, tasks("qsrc", Q * (SECONDS + 10), "q"), 64, "bench");
    await sleep(2_000);
    const c0 = (await api.stats()).byKey["key-q"] ?? 0;
    const t0 = Date.now();
    await sleep(SECONDS * 1000);
    const s = await api.stats();
    const rate = ((s.byKey["key-q"] ?? 0) - c0) / ((Date.now() - t0) / 1000);
    const worst = s.maxPerInterval["key-q"];
    process.stdout.write(
      `quota  4 fetch replicas (clock +500 ms, -500 ms, slow KV +30 ms each way), ${SECONDS} s, quota ${Q} per rolling 1 s\n`,
    );
    process.stdout.write(
      `quota  most calls in any 1 s interval: ${worst} (quota ${Q}) ${worst <= Q ? "OK" : "OVERSPENT"}; upstream 429s: ${s.byStatus["429"] ?? 0}\n`,
    );
    process.stdout.write(
      `quota  utilisation: ${rate.toFixed(2)} calls/s = ${((rate / Q) * 100).toFixed(1)} % of quota (target >= 90 %)\n`,
    );
    await Promise.all(procs.splice(0).map((p) => p.stop()));

    // 2. Isolation at the fetch stage: A alone (baseline), then A behind B.
    const timeA = async (withB: boolean): Promise<number> => {
      const px = uniquePrefix(withB ? "biso" : "bbase");
      prefixes.push(px);
      const n = meshNames(px);
      const dir = writeConfig({
        "fetch/sources/asrc.yaml": source("asrc", "{ windows: [{ limit: 100, per: 1s }] }", api.url, "A_KEY"),
        "fetch/sources/bsrc.yaml": source("bsrc", "{ windows: [{ limit: 5, per: 1m }] }", api.url, "B_KEY"),
      });
      const p = await startServiceProc("fetch", {
        configDir: dir,
        prefix: px,
        env: { A_KEY: "key-a", B_KEY: "key-b" },
      });
      procs.push(p);
      await sleep(1_100); // both rolling windows of the upstream start empty for each run
      const js = jetstream(nc);
      if (withB) await publishTasks(js, n, tasks("bsrc", 1500, `b${px}`), 64, "bench");
      const start = Date.now();
      await publishTasks(js, n, tasks("asrc", 1500, `a${px}`), 64, "bench");
      const jsm = await jetstreamManager(nc);
      for (;;) {
        const st = await jsm.streams
          .info(n.streams.FETCHED, { subjects_filter: n.task.fetched("asrc") })
          .catch(() => null);
        if ((st?.state.messages ?? 0) >= 1500) break;
        if (Date.now() - start > 120_000) throw new Error("A did not finish in 120 s");
        await sleep(200);
      }
      const ms = Date.now() - start;
      await p.stop();
      return ms;
    };
    const alone = await timeA(false);
    const behind = await timeA(true);
    process.stdout.write(
      `isolation  1,500 tasks of a 100/s source: alone ${alone} ms, behind 1,500 queued tasks of a 5/min source ${behind} ms (ratio ${(behind / alone).toFixed(2)}; its quota alone needs 15 s)\n`,
    );
  } finally {
    await Promise.allSettled(procs.map((p) => p.stop()));
    const jsm = await jetstreamManager(nc);
    for (const px of prefixes) {
      const n = meshNames(px);
      for (const st of Object.values(n.streams)) await jsm.streams.delete(st).catch(() => undefined);
      await jsm.streams.delete(`KV_${n.buckets.limiter}`).catch(() => undefined);
    }
    await nc.close();
    await proxy.close();
    await api.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`quota bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
