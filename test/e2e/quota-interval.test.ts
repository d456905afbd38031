// The quota invariant through four real fetch processes: one with its clock 500 ms ahead, one
// 500 ms behind, one behind a slow link to NATS (its KV round trips outlast the limiter's send
// slack), against an upstream in its own process that counts every 1 s interval and refuses the 21st.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { FetchTask } from "@machina/protos";
import { publishTasks } from "@machina/invoke";
import { meshNames } from "@machina/subjects";
import { startFakeApiProc, type FakeApiProc } from "../support/fake-api-proc";
import { NATS_URL, uniquePrefix } from "../support/nats-env";
import { skewedFetchReplicas, startServiceProc, writeConfig, type ServiceProc } from "../support/service-procs";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy";

const Q = 20;
const prefix = uniquePrefix("quota");
const names = meshNames(prefix);

describe(
  "quota over every interval, across four replica processes, skewed clocks and a slow KV",
  { timeout: 180_000 },
  () => {
    let api: FakeApiProc;
    let proxy: TcpProxy;
    let nc: NatsConnection;
    const procs: ServiceProc[] = [];

    before(async () => {
      // A rolling-window upstream that refuses the (Q+1)-th call in any 1 s, in its own process.
      api = await startFakeApiProc(`key-q:${Q}/1000/rolling,warm-key:100000/1000`);
      // A cold upstream process answers its first requests late, which would look like bunching.
      for (let i = 0; i < 50; i++)
        await (await fetch(`${api.url}/v3/sites/warm${i}.test`, { headers: { "X-Api-Key": "warm-key" } })).text();
      const natsPort = Number(new URL(NATS_URL.replace("nats://", "http://")).port);
      proxy = await startTcpProxy({ targetPort: natsPort, delayMs: 30 });
      const configDir = writeConfig({
        "fetch/sources/qsrc.yaml": [
          "name: qsrc",
          `limiter: { windows: [{ limit: ${Q}, per: 1s }] }`,
          "data: { api_key: { env: Q_KEY } }",
          `manager: { type: http-auth, base_url: "${api.url}", timeout: 10s, auth: { type: api_key, header: X-Api-Key, value: "{{data.api_key}}" }, retries: { max: 0 } }`,
          'queries: { site: { path: "/v3/sites/{{lead.domain}}", extract: { site: { type: website, path: site } } } }',
          "",
        ].join("\n"),
      });
      for (const env of skewedFetchReplicas(proxy.port))
        procs.push(await startServiceProc("fetch", { configDir, prefix, env: { Q_KEY: "key-q", ...env } }));
      nc = await connect({ servers: NATS_URL });
    });

    after(async () => {
      await Promise.allSettled(procs.map((p) => p.stop()));
      await proxy?.close();
      await api?.stop();
      const jsm = nc ? await jetstreamManager(nc) : null;
      for (const s of Object.values(names.streams)) await jsm?.streams.delete(s).catch(() => undefined);
      await jsm?.streams.delete(`KV_${names.buckets.limiter}`).catch(() => undefined);
      await nc?.close();
    });

    it("no interval of 1 s sees more than Q calls, none is refused, and the quota is used", async (t) => {
      const tasks: FetchTask[] = Array.from({ length: 800 }, (_, i) => ({
        id: `q/${i}`,
        source: "qsrc",
        query: "site",
        lead: { id: `q${i}.test`, args: { domain: `q${i}.test` } },
        trigger: "test",
        tick: 1,
        createdAt: Date.now(),
        querySet: "qs",
      }));
      await publishTasks(jetstream(nc), names, tasks, 64, "test");
      await new Promise((r) => setTimeout(r, 2_000));
      const c0 = (await api.stats()).byKey["key-q"] ?? 0;
      const t0 = Date.now();
      await new Promise((r) => setTimeout(r, 10_000));
      const stats = await api.stats();
      const rate = ((stats.byKey["key-q"] ?? 0) - c0) / ((Date.now() - t0) / 1000);
      t.diagnostic(
        `upstream: most calls in any 1 s interval ${stats.maxPerInterval["key-q"]} (quota ${Q}); ${rate.toFixed(1)} calls/s steady (${((rate / Q) * 100).toFixed(0)} % of quota); statuses ${JSON.stringify(stats.byStatus)}`,
      );
      assert.ok(
        stats.maxPerInterval["key-q"] <= Q,
        `the upstream saw ${stats.maxPerInterval["key-q"]} calls within one second`,
      );
      assert.equal(stats.byStatus["429"] ?? 0, 0, "the rolling upstream never had to refuse a call");
      assert.ok(rate >= Q * 0.85, `only ${rate.toFixed(1)} calls/s of ${Q}`);
    });
  },
);
