import { loadComponents } from "@machina/config";
import { addCounter, defineEndpoint, defineWorker, recordBatchesPublisher } from "@machina/runtime";
import type { ServiceContext, ServiceSpec } from "@machina/runtime";
import { MachinaError } from "@machina/wire";
import { publishTasks } from "./fetch-link";
import { compileLedgers, ledgerOf } from "./ledgers";
import { buildTasks, compileQuerySets, querySetOf } from "./query-sets";
import { startScheduler } from "./scheduler";
import { compileTriggers, currentTick, triggerOf } from "./triggers";
import type { TriggerDef } from "./triggers";

// FETCHED messages handled at once: enough that the batches they split into form large groups.
const HANDLER_LANES = 32;

/** Invoke settings. */
export interface InvokeConfig {
  invoke: { maxInFlight: number; scheduler: boolean };
}

/** The invoke service (layer 1): triggers, ledgers, query sets, the fetch link and the FETCHED handler. */
export const invokeService: ServiceSpec<InvokeConfig> = {
  name: "invoke",
  version: "0.1.0",
  description: "Turns triggers, ledgers and query sets into fetch tasks and routes fetched records",
  httpPort: 9302,
  schema: {
    invoke: {
      maxInFlight: {
        doc: "Unacknowledged FetchTask publishes at once (backpressure of the fetch link).",
        format: "nat",
        default: 64,
      },
      scheduler: {
        doc: "Run timer triggers in this replica (off for handler-only replicas).",
        format: Boolean,
        default: true,
      },
    },
  },
  async setup(ctx: ServiceContext<InvokeConfig>) {
    const { names, log } = ctx;
    const ledgers = compileLedgers(loadComponents("invoke/ledgers", ctx.configSource));
    const querySets = compileQuerySets(loadComponents("invoke/query_sets", ctx.configSource), ledgers);
    const triggers = compileTriggers(loadComponents("invoke/triggers", ctx.configSource), querySets);

    const superseded = addCounter(
      ctx.metrics,
      "machina_fetch_tasks_superseded_total",
      "FetchTasks that replaced an older queued task for the same (source, query, lead); the older one is never fetched.",
      ["source"],
    );
    // Batches of one type split from answers handled together leave as one AGGREGATE message.
    const toAggregate = recordBatchesPublisher(ctx.client, ctx.node.id);
    const fire = async (t: TriggerDef, tick: number) => {
      const tasks = t.querySets.flatMap((qs) =>
        buildTasks(querySetOf(querySets, qs), ledgers, { trigger: t.name, time: tick }),
      );
      const res = await publishTasks(ctx.client, names, tasks, ctx.config.invoke.maxInFlight, ctx.node.id);
      for (const [source, n] of res.supersededBySource) superseded.inc({ source }, n);
      log.info(
        { trigger: t.name, tick, published: res.published, duplicates: res.duplicates, superseded: res.superseded },
        "tick fired",
      );
      return res;
    };

    const stopScheduler = ctx.config.invoke.scheduler
      ? startScheduler([...triggers.values()], async (t, tick) => void (await fire(t, tick)), log)
      : () => undefined;

    return {
      endpoints: [
        defineEndpoint({
          name: "fire",
          subject: names.invoke.fire,
          request: "FireRequest",
          reply: "FireReply",
          description: "Fire a trigger now, for the current tick of its grid",
          async handler(req) {
            if (!req.trigger)
              throw new MachinaError(
                "BAD_REQUEST",
                `missing "trigger"; known triggers: ${[...triggers.keys()].join(", ")}`,
              );
            const t = triggerOf(triggers, req.trigger);
            const tick = currentTick(t, Date.now(), Date.now());
            const res = await fire(t, tick);
            return {
              trigger: t.name,
              tick,
              tasks: res.published,
              duplicates: res.duplicates,
              superseded: res.superseded,
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
            return {
              tasks: buildTasks(querySetOf(querySets, req.querySet), ledgers, { trigger: "manual", time: Date.now() }),
            };
          },
        }),
        defineEndpoint({
          name: "ledger-get",
          subject: names.invoke.ledger("get"),
          request: "Ledger",
          reply: "Ledger",
          description: "The leads of a ledger by name",
          async handler(req) {
            if (!req.name)
              throw new MachinaError("BAD_REQUEST", `missing "name"; known ledgers: ${[...ledgers.keys()].join(", ")}`);
            return ledgerOf(ledgers, req.name);
          },
        }),
      ],
      workers: [
        defineWorker({
          name: "handler",
          stream: "FETCHED",
          durable: names.consumers.fetched,
          filter: names.streamSubjects.FETCHED,
          message: "QueryResponses",
          concurrency: HANDLER_LANES,
          async handle(msg, { timing }) {
            const stamp = timing();
            const stored: Promise<void>[] = [];
            for (const resp of msg.responses) {
              const taskId = resp.taskId || resp.requestId;
              const fetchedAt = resp.meta?.end || Date.now();
              for (const [type, set] of Object.entries(resp.data?.types ?? {})) {
                if (!set.records.length) continue;
                const batch = {
                  // A paginated task answers once per page, each with its own request id
                  // (`<task>:p<n>`); elsewhere the request id is the task id.
                  id: `${resp.requestId || taskId}:${type}`,
                  type,
                  source: resp.source,
                  query: resp.query,
                  taskId,
                  fetchedAt,
                  records: set.records,
                  // One batch holds all records of its type in the answer, so positions start at 0.
                  firstSeq: 0,
                };
                stored.push(toAggregate.publish(names.task.aggregate(type), batch, stamp));
              }
            }
            await Promise.all(stored);
          },
        }),
      ],
      async onStop() {
        stopScheduler();
      },
    };
  },
};
