import type { Logger } from "@machina/log";
import type { ComponentSet } from "@machina/runtime";
import { checkRefreshTriggers, compileLedgers } from "./ledgers";
import type { KvLedgers, LeadShape, LedgerState, LedgerTable } from "./ledgers";
import { compileQuerySets } from "./query-sets";
import type { QuerySetTable } from "./query-sets";
import type { Scheduler } from "./scheduler";
import { compileTriggers } from "./triggers";
import type { TriggerDef } from "./triggers";

/** The tables invoke runs from; ticks, endpoints and the cross-check read them by name. */
export interface InvokeTables {
  ledgers: LedgerTable;
  querySets: QuerySetTable;
  triggers: Map<string, TriggerDef>;
}

/** What taking a head live needs besides the tables. */
export interface LiveApplyDeps {
  tables: InvokeTables;
  kvLedgers: KvLedgers;
  /** The timers of this replica; null when it runs no scheduler (invoke.scheduler off). */
  scheduler: Scheduler | null;
  /** `compute.get.<name>` of a self ledger's computation. */
  computeGet(name: string): string;
  /** Counts leads a ledger left out (a constant one's misfits, a reloaded kv ledger's). */
  onRejected(ledger: string, n: number): void;
  log: Logger;
}

// Whether leads that fit `a` fit `b` the same way (what decides whether stored leads are read again).
function sameShape(a: LeadShape, b: LeadShape): boolean {
  const fields = (s: LeadShape) => (s.fields === null ? null : [...s.fields].sort(([x], [y]) => (x < y ? -1 : 1)));
  return (
    a.leadId === b.leadId && a.undeclared === b.undeclared && JSON.stringify(fields(a)) === JSON.stringify(fields(b))
  );
}

/**
 * Takes a config head live: compiles ledgers, query sets and triggers as setup does (a failure
 * leaves everything as it was), loads every kv or self ledger that is new or whose source or
 * shape changed from the bucket (its stored leads checked against the new shape), then swaps the
 * tables in one synchronous step and reschedules the triggers. A kv or self ledger whose shape
 * and source stay keeps its leads and watch; a changed producer or refresh trigger applies from
 * its next refresh. Ticks already running finish with the query sets they fired with.
 */
export async function applyInvokeConfig(set: ComponentSet, deps: LiveApplyDeps): Promise<void> {
  const { tables, kvLedgers, log } = deps;
  const nextLedgers = compileLedgers(set.docs("invoke/ledgers"), deps.computeGet);
  const nextQuerySets = compileQuerySets(set.docs("invoke/query_sets"), nextLedgers);
  const nextTriggers = compileTriggers(set.docs("invoke/triggers"), nextQuerySets);
  checkRefreshTriggers(nextLedgers, new Set(nextTriggers.keys()));

  const kept = new Map<LedgerState, LedgerState>();
  const loaded: LedgerState[] = [];
  try {
    for (const next of nextLedgers.values()) {
      if (next.source === "constant") continue;
      const was = tables.ledgers.get(next.name);
      if (was !== undefined && was.source === next.source && sameShape(was.shape, next.shape)) kept.set(next, was);
      else {
        loaded.push(next);
        await kvLedgers.follow(next);
      }
    }
  } catch (err) {
    for (const l of loaded) kvLedgers.unfollow(l);
    throw err;
  }

  // From here on nothing awaits: a tick or a request sees the old tables or the new ones.
  const running = new Set([...kept.values()]);
  for (const old of tables.ledgers.values())
    if (old.source !== "constant" && !running.has(old)) kvLedgers.unfollow(old);
  tables.ledgers.clear();
  for (const [name, next] of nextLedgers) {
    const was = kept.get(next);
    if (was !== undefined) {
      was.origin = next.origin;
      was.from = next.from;
      was.refresh = next.refresh;
      tables.ledgers.set(name, was);
      continue;
    }
    tables.ledgers.set(name, next);
    if (next.rejectedTotal > 0) deps.onRejected(name, next.rejectedTotal);
  }
  tables.querySets.clear();
  for (const [name, q] of nextQuerySets) tables.querySets.set(name, q);
  tables.triggers.clear();
  for (const [name, t] of nextTriggers) tables.triggers.set(name, t);
  deps.scheduler?.update([...nextTriggers.values()]);
  log.info(
    {
      head: set.head,
      ledgers: [...tables.ledgers.keys()].sort(),
      reloaded: loaded.map((l) => l.name),
      querySets: [...tables.querySets.keys()].sort(),
      triggers: [...tables.triggers.keys()].sort(),
    },
    "ledgers, query sets and triggers reloaded",
  );
}
