// Per-service scaling, the small version of `make scale-demo`: 3 fetch, 2 aggregate, 2 data and
// one invoke replica as separate processes against the test nats-server and Cassandra. A few
// hundred leads fired once spread over every fetch and data replica (each replica's own
// /metrics), both aggregate replicas own a partition, and every dump and clean row is stored
// exactly once.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { describeTally } from "../support/flow-rows";
import { PipelineFlow, type FlowReport } from "../support/pipeline-flow";

const LEADS = 300;
const PLAN = { data: 2, aggregate: 2, invoke: 1, fetch: 3 };

describe("scale-out: replicas share the pipeline's work", { timeout: 300_000 }, () => {
  let flow: PipelineFlow | undefined;
  let report: FlowReport;

  before(async () => {
    flow = await PipelineFlow.start({ leads: LEADS, replicas: PLAN, label: "scale" });
    const fired = await flow.fire();
    assert.equal(fired.tasks, LEADS, `invoke published ${fired.tasks} tasks`);
    report = await flow.report(await flow.settle(180_000));
  });

  after(async () => {
    if (process.env.MACHINA_TEST_VERBOSE)
      for (const r of flow?.replicas ?? []) process.stderr.write(`--- ${r.label}\n${r.output().slice(-3000)}\n`);
    await flow?.close();
  });

  it("every dump and clean row is stored exactly once, none missing, nothing dead-lettered", (t) => {
    t.diagnostic(`dump: ${describeTally(report.dump)}; clean: ${describeTally(report.clean)}`);
    assert.equal(report.dump.missing, 0, `dump rows missing: ${describeTally(report.dump)}`);
    assert.deepEqual(report.dump.duplicated, [], "no dump row stored twice");
    assert.equal(report.dump.rows, LEADS);
    assert.equal(report.clean.missing, 0, `clean rows missing: ${describeTally(report.clean)}`);
    assert.equal(report.clean.rows, LEADS);
    assert.equal(report.deadLetters, 0);
  });

  it("every fetch and data replica handled some of the work, and the counts add up", (t) => {
    for (const c of report.perReplica)
      t.diagnostic(`${c.label} (pid ${c.pid}): ${c.acked} acked ${JSON.stringify(c.extra)}`);
    const of = (service: string) => report.perReplica.filter((c) => c.service === service);
    for (const service of ["fetch", "data"]) {
      assert.equal(of(service).length, PLAN[service as keyof typeof PLAN]);
      for (const c of of(service)) assert.ok(c.acked > 0, `${c.label} handled nothing: ${JSON.stringify(of(service))}`);
    }
    // One FetchTask per lead, each acked by exactly one fetch replica (a redelivery would count twice).
    assert.equal(
      of("fetch").reduce((n, c) => n + c.acked, 0),
      LEADS,
    );
    // Each aggregate replica owns a partition of the stateful type and keeps state of its entities.
    for (const c of of("aggregate")) {
      assert.ok(c.extra.partitions > 0, `${c.label} owns no partition`);
      assert.ok(c.extra.keysWritten > 0, `${c.label} kept no entity's state`);
    }
    // At least one state write per lead (a partition replayed from its checkpoint writes again).
    const written = of("aggregate").reduce((n, c) => n + c.extra.keysWritten, 0);
    assert.ok(written >= LEADS, `${written} entity states written for ${LEADS} leads`);
  });
});
