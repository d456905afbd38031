import { ledgerKind } from "./ledgers";
import { querySetKind } from "./query-sets";
import { triggerKind } from "./triggers";

export { invokeService } from "./invoke-service";
export type { InvokeConfig } from "./invoke-service";
export {
  compileLedgers,
  ledgerOf,
  ledgerKind,
  LEDGER_SOURCES,
  LeadStore,
  KvLedgers,
  fitLead,
  leadKey,
  refreshSelfLedger,
} from "./ledgers";
export type { LedgerState, LedgerTable, LeadShape } from "./ledgers";
export { compileQuerySets, querySetOf, buildTasks, leadTasks, querySetKind } from "./query-sets";
export type { QuerySetTable, TickRef } from "./query-sets";
export { querySetProblems, QUERY_SETS_CHECK } from "./cross-check";
export { TickRunner } from "./ticks/tick-runner";
export type { TickOutcome, TickRunnerDeps } from "./ticks/tick-runner";
export { tickKey, tickId, parseTickRecord } from "./ticks/tick-record";
export type { TickRecord } from "./ticks/tick-record";
export {
  compileTriggers,
  triggerOf,
  currentTick,
  nextTick,
  nextFireAt,
  describeSchedule,
  triggerKind,
} from "./triggers";
export type { TriggerDef } from "./triggers";
export { Scheduler, startScheduler } from "./scheduler";
export type { FireTick } from "./scheduler";
export { publishTasks, publishTask } from "./fetch-link";
export type { TaskAck, LinkResult } from "./fetch-link";

/** Invoke's component kinds, for the reference docs. */
export const componentKinds = [ledgerKind, querySetKind, triggerKind] as const;
