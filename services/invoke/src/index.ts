import { ledgerKind } from "./ledgers";
import { querySetKind } from "./query-sets";
import { triggerKind } from "./triggers";

export { invokeService } from "./invoke-service";
export type { InvokeConfig } from "./invoke-service";
export { compileLedgers, ledgerOf, ledgerKind, LEDGER_SOURCES } from "./ledgers";
export type { LedgerTable } from "./ledgers";
export { compileQuerySets, querySetOf, buildTasks, querySetKind } from "./query-sets";
export type { QuerySetTable } from "./query-sets";
export { compileTriggers, triggerOf, currentTick, nextTick, triggerKind } from "./triggers";
export type { TriggerDef } from "./triggers";
export { startScheduler } from "./scheduler";
export { publishTasks } from "./fetch-link";

/** Invoke's component kinds, for the reference docs. */
export const componentKinds = [ledgerKind, querySetKind, triggerKind] as const;
