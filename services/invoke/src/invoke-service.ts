import { setFlagsFromString } from "node:v8";
import { addCounter, defineEndpoint, recordBatchesPublisher } from "@machina/runtime";
import type { ServiceContext, ServiceSpec } from "@machina/runtime";
import { meshNames } from "@machina/subjects";
import { MachinaError } from "@machina/wire";
import { startCrossCheck } from "./cross-check";
import { ledgerEndpoints } from "./endpoints/ledger-endpoints";
import { fetchedHandler } from "./endpoints/fetched-handler";
import { publishTask } from "./fetch-link";
import { KvLedgers, checkRefreshTriggers, compileLedgers, ledgerKind, ledgerOf, refreshSelfLedger } from "./ledgers";
import { buildTasks, compileQuerySets, querySetKind, querySetOf } from "./query-sets";
import { applyInvokeConfig } from "./live-apply";
import { Scheduler } from "./scheduler";
import { TickRunner } from "./ticks/tick-runner";
import { compileTriggers, currentTick, describeSchedule, nextFireAt, triggerKind, triggerOf } from "./triggers";
import type { TriggerDef } from "./triggers";

/** Invoke settings. */
export interface InvokeConfig {
  invoke: {
    maxInFlight: number;
    scheduler: boolean;
    tickLeaseMs: number;
    checkpointMs: number;
    crossCheckMs: number;
    previewMaxTasks: number;
    heapGrowingPercent: number;
  };
}

/** The invoke service (layer 1): triggers, ledgers, query sets, the fetch link and the FETCHED handler. */
export const invokeService: ServiceSpec<InvokeConfig> = {
  name: "invoke",
  version: "0.2.0",
  description: "Turns triggers, ledgers and query sets into fetch tasks and routes fetched records",
  httpPort: 9302,
  // A patch to ledgers, query sets or triggers compiles as setup compiles them, references included.
  components: {
    kinds: ["invoke/ledgers", "invoke/query_sets", "invoke/triggers"],
    schemas: [ledgerKind, querySetKind, triggerKind],
    validate(set) {
      const ledgers = compileLedgers(set.docs("invoke/ledgers"), (n) => meshNames().computeGet(n));
      const querySets = compileQuerySets(set.docs("invoke/query_sets"), ledgers);
      const triggers = compileTriggers(set.docs("invoke/triggers"), querySets);
      checkRefreshTriggers(ledgers, new Set(triggers.keys()));
    },
  },
  schema: {
    invoke: {
      maxInFlight: {
        doc: "Leads whose FetchTasks are published at once (backpressure of the fetch link).",
        format: "nat",
        default: 64,
      },
      scheduler: {
        doc: "Run timer and cron triggers in this replica, and finish ticks other replicas dropped (off for handler-only replicas).",
        format: Boolean,
        default: true,
      },
      tickLeaseMs: {
        doc: "How long a tick stays with the replica publishing it without a renewal before another takes it over, ms.",
        format: "nat",
        default: 15_000,
      },
      checkpointMs: {
        doc: "How often a running tick saves its progress (and renews its lease), ms.",
        format: "nat",
        default: 1_000,
      },
      previewMaxTasks: {
        doc: "Most tasks invoke.buildqueryset answers with; a larger query set is refused with a pointer to invoke.ledger.list.",
        format: "nat",
        default: 10_000,
      },
      heapGrowingPercent: {
        doc:
          "How far V8 lets this process's old space grow past what the last full collection kept, percent, before it collects " +
          "again (0: V8's own factor, up to 300). Set before the config is read. A long tick makes garbage fast and keeps " +
          "little; at 30 a 100,000-lead tick peaks at ~1.47× the RSS of a 1,000-lead one instead of ~2×, at the same publish " +
          "rate within this machine's noise. No cap: a bigger ledger still fits.",
        format: "nat",
        default: 30,
      },
      crossCheckMs: {
        doc: "How often query sets are checked against the sources fetch serves (fetch.sources), ms.",
        format: "nat",
        default: 30_000,
      },
    },
  },
  // Set before the components are read (the config chain's tree, then the ledgers), so a big
  // constant ledger's parse garbage is collected early too.
  prepare(config) {
    if (config.invoke.heapGrowingPercent > 0)
      setFlagsFromString(`--heap-growing-percent=${config.invoke.heapGrowingPercent}`);
  },
  async setup(ctx: ServiceContext<InvokeConfig>) {
    const { names, log, config } = ctx;
    const ledgers = compileLedgers(ctx.components.docs("invoke/ledgers"), (n) => names.computeGet(n));
    const querySets = compileQuerySets(ctx.components.docs("invoke/query_sets"), ledgers);
    const triggers = compileTriggers(ctx.components.docs("invoke/triggers"), querySets);
    checkRefreshTriggers(ledgers, new Set(triggers.keys()));

    const rejectedLeads = addCounter(
      ctx.metrics,
      "machina_invoke_leads_rejected_total",
      "Leads left out because they do not fit their ledger's fields (at load, on an edit or on a refresh).",
      ["ledger"],
    );
    for (const l of ledgers.values()) {
      if (l.rejectedTotal === 0) continue;
      rejectedLeads.inc({ ledger: l.name }, l.rejectedTotal);
      for (const p of l.rejected)
        log.warn(
          { ledger: l.name, lead: p.id, problem: p.error, origin: l.origin },
          "lead left out: it does not fit its ledger",
        );
    }
    const superseded = addCounter(
      ctx.metrics,
      "machina_fetch_tasks_superseded_total",
      "FetchTasks that replaced an older queued task for the same (source, query, lead); the older one is never fetched.",
      ["source"],
    );

    const kvLedgers = await KvLedgers.open(
      ctx.kvm,
      names.buckets.invokeLedgers,
      ledgers,
      log,
      ctx.config.nats.replicas,
    );
    await kvLedgers.start();
    // Stored leads that no longer fit their ledger's fields were left out as they loaded.
    for (const l of ledgers.values())
      if (l.source !== "constant" && l.rejectedTotal > 0) rejectedLeads.inc({ ledger: l.name }, l.rejectedTotal);
    const ticksKv = await ctx.kvm.create(names.buckets.invokeTicks, { history: 1, replicas: ctx.config.nats.replicas });
    const runner = new TickRunner({
      kv: ticksKv,
      querySets,
      ledgers,
      publish: (task) => publishTask(ctx.client, names, task, ctx.node.id, querySets.get(task.querySet)?.resources),
      async refresh(ledger) {
        const res = await refreshSelfLedger(ledger, ctx.client, kvLedgers);
        if (res.rejected > 0) rejectedLeads.inc({ ledger: ledger.name }, res.rejected);
        log.info({ ledger: ledger.name, ...res }, "self ledger refreshed");
      },
      owner: ctx.node.id,
      log,
      maxInFlight: Math.max(1, config.invoke.maxInFlight),
      leaseMs: config.invoke.tickLeaseMs,
      checkpointMs: config.invoke.checkpointMs,
    });

    const fire = async (t: TriggerDef, tick: number, forced = false) => {
      const res = await runner.fire(t, tick, forced);
      for (const [source, n] of res.supersededBySource) superseded.inc({ source }, n);
      log.info(
        {
          tick: res.id,
          state: res.state,
          published: res.published,
          duplicates: res.duplicates,
          superseded: res.superseded,
        },
        "tick fired",
      );
      return res;
    };

    const startedAt = Date.now();
    const stops: (() => void)[] = [];
    const scheduler = config.invoke.scheduler
      ? new Scheduler(async (t, tick) => void (await fire(t, tick)), log)
      : null;
    if (scheduler !== null) {
      scheduler.update([...triggers.values()]);
      stops.push(() => scheduler.stop());
      // Ticks a dead replica left half-published: checked at start and twice per lease.
      const sweep = () =>
        runner
          .resumeAbandoned(triggers)
          .catch((err: unknown) => log.warn({ err }, "could not check for abandoned ticks"));
      void sweep();
      const timer = setInterval(() => void sweep(), Math.max(500, config.invoke.tickLeaseMs / 2));
      stops.push(() => clearInterval(timer));
    }
    stops.push(
      startCrossCheck({
        client: ctx.client,
        names,
        querySets,
        health: ctx.health,
        log,
        everyMs: config.invoke.crossCheckMs,
      }),
    );

    return {
      endpoints: [
        defineEndpoint({
          name: "fire",
          subject: names.invoke.fire,
          request: "FireRequest",
          reply: "FireReply",
          description:
            "Fire a trigger now: its current grid tick (published once per network), or with force a new tick of its own",
          async handler(req) {
            if (!req.trigger)
              throw new MachinaError(
                "BAD_REQUEST",
                `missing "trigger"; known triggers: ${[...triggers.keys()].join(", ")}`,
              );
            const t = triggerOf(triggers, req.trigger);
            const now = Date.now();
            const tick = req.force ? now : currentTick(t, now, startedAt);
            const res = await fire(t, tick, req.force);
            return {
              trigger: t.name,
              tick,
              tasks: res.published,
              duplicates: res.duplicates,
              superseded: res.superseded,
              tickId: res.id,
              state: res.state,
            };
          },
        }),
        defineEndpoint({
          name: "triggers",
          subject: names.invoke.triggers,
          request: "Empty",
          reply: "TriggersReply",
          description:
            "Every trigger: its schedule, next fire time, query sets, the ledgers it refreshes and its last tick",
          async handler() {
            const last = await runner.lastTicks();
            const now = Date.now();
            return {
              triggers: [...triggers.values()].map((t) => ({
                name: t.name,
                type: t.type,
                schedule: describeSchedule(t),
                timezone: t.timezone,
                // The time this replica's timer is armed for, so a live schedule change shows as it runs.
                nextFire: scheduler?.nextFire(t.name) ?? nextFireAt(t, now, startedAt) ?? 0,
                querySets: t.querySets,
                ledgers: [...ledgers.values()].filter((l) => l.refresh === t.name).map((l) => l.name),
                lastTickId: last.get(t.name)?.id ?? "",
                lastState: last.get(t.name)?.state ?? "",
              })),
            };
          },
        }),
        defineEndpoint({
          name: "buildqueryset",
          subject: names.invoke.buildQuerySet,
          request: "BuildQuerySetRequest",
          reply: "BuildQuerySetReply",
          description: "The fetch tasks a query set produces now (nothing is published)",
          async handler(req) {
            if (!req.querySet)
              throw new MachinaError(
                "BAD_REQUEST",
                `missing "querySet"; known query sets: ${[...querySets.keys()].join(", ")}`,
              );
            const qs = querySetOf(querySets, req.querySet);
            const n = ledgerOf(ledgers, qs.ledger).store.size * qs.queries.length;
            // One reply is one NATS message: a preview of a 100,000-lead ledger would not fit.
            if (n > config.invoke.previewMaxTasks)
              throw new MachinaError(
                "BAD_REQUEST",
                `query set "${qs.name}" builds ${n} tasks; a preview shows at most ${config.invoke.previewMaxTasks} (invoke.previewMaxTasks). Page through its ledger "${qs.ledger}" with invoke.ledger.list instead`,
                { details: { querySet: qs.name, tasks: n } },
              );
            return { tasks: buildTasks(qs, ledgers, { trigger: "manual", time: Date.now() }) };
          },
        }),
        ...ledgerEndpoints(names, ledgers, kvLedgers, (ledger, n) => rejectedLeads.inc({ ledger }, n)),
      ],
      workers: [fetchedHandler(ctx, recordBatchesPublisher(ctx.client, ctx.node.id))],
      // Live: every ledger, query set and trigger (see applyInvokeConfig).
      applyConfig: (set) =>
        applyInvokeConfig(set, {
          tables: { ledgers, querySets, triggers },
          kvLedgers,
          scheduler,
          computeGet: (n) => names.computeGet(n),
          onRejected: (ledger, n) => rejectedLeads.inc({ ledger }, n),
          log,
        }),
      async onStop() {
        for (const stop of stops) stop();
        await runner.stop();
        kvLedgers.stop();
      },
    };
  },
};
