// A tick survives the replica publishing it: invoke is killed with SIGKILL mid-tick, a second
// replica takes the tick over once the lease runs out and resumes after the last saved lead, and
// the FETCH stream ends up holding every task of the tick exactly once (its sequence counts every
// message ever stored, so a task stored twice would show).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { parseTickRecord, type TickRecord } from "@machina/invoke";
import { meshNames } from "@machina/subjects";
import { NATS_URL, removeNetwork, uniquePrefix } from "../support/nats-env";
import { eventually, startServiceProc, writeConfig, type ServiceProc } from "../support/service-procs";

const LEADS = 3_000;
const QUERIES = 2;
const prefix = uniquePrefix("ticks");
const names = meshNames(prefix);

const leads = Array.from(
  { length: LEADS },
  (_, i) => `  - id: lead-${String(i).padStart(5, "0")}\n    domain: s${i}.example\n`,
).join("");
const configDir = writeConfig({
  "invoke/ledgers/bulk.yaml": `leads:\n${leads}`,
  "invoke/query_sets/bulk_site.yaml": "source: sitestats\nqueries: [site, pages]\nledger: bulk\n",
  "invoke/triggers/bulk.yaml": "type: manual\nquery_sets: [bulk_site]\n",
});
// Few leads in flight, so the tick takes long enough to be killed in the middle of it.
const env = {
  MACHINA_INVOKE_MAX_IN_FLIGHT: "2",
  MACHINA_INVOKE_TICK_LEASE_MS: "3000",
  MACHINA_INVOKE_CHECKPOINT_MS: "200",
};

describe("invoke: a tick finishes after its replica is killed", { timeout: 180_000 }, () => {
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let ticks: KV;
  const procs: ServiceProc[] = [];

  before(async () => {
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    jsm = await jetstreamManager(nc);
  });

  after(async () => {
    for (const p of procs) await p.stop();
    await removeNetwork(nc, names);
    await nc?.close();
  });

  const record = async (): Promise<TickRecord | undefined> => {
    for await (const key of await ticks.keys()) {
      const e = await ticks.get(key);
      const rec = e === null ? null : parseTickRecord(e.string());
      if (rec !== null) return rec;
    }
    return undefined;
  };

  it("publishes every task exactly once across the kill and the takeover", async () => {
    const first = await startServiceProc("invoke", { configDir, prefix, env });
    procs.push(first);
    ticks = await new Kvm(nc).open(names.buckets.invokeTicks);
    // Not awaited: the replica answering it dies.
    nc.request(names.invoke.fire, new TextEncoder().encode('{"trigger":"bulk"}'), { timeout: 60_000 }).catch(
      () => undefined,
    );
    const before = await eventually(
      "the tick is part-way",
      async () => {
        const r = await record();
        return r !== undefined && r.after !== "" && r.published >= 500 ? r : undefined;
      },
      60_000,
      20,
    );
    await first.kill();
    const atKill = (await record())!;
    assert.equal(atKill.state, "running", "killed before the tick finished");
    assert.ok(atKill.published < LEADS * QUERIES, `${atKill.published} tasks published before the kill`);

    const second = await startServiceProc("invoke", { configDir, prefix, env });
    procs.push(second);
    const done = await eventually("the second replica finishes the tick", async () => {
      const r = await record();
      return r?.state === "done" ? r : undefined;
    });
    assert.equal(done.id, before.id);
    assert.notEqual(done.owner, before.owner);
    assert.match(second.output(), /took over a tick whose owner stopped renewing it/);

    const info = await jsm.streams.info(names.streams.FETCH);
    assert.equal(info.state.messages, LEADS * QUERIES, "every task is queued");
    assert.equal(info.state.last_seq, LEADS * QUERIES, "no task was stored twice");
    // Tasks published after the last save were published again and dropped as duplicates.
    assert.equal(done.published + done.duplicates >= LEADS * QUERIES, true);
  });
});
