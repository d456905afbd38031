import type { KV } from "@nats-io/kv";
import type { Logger } from "@machina/log";
import type { FetchTask } from "@machina/protos";
import { isCasConflict } from "@machina/runtime";
import { isMachinaError } from "@machina/wire";
import type { TaskAck } from "../fetch-link";
import type { LedgerState, LedgerTable } from "../ledgers";
import { leadTasks } from "../query-sets";
import type { QuerySetTable } from "../query-sets";
import type { TriggerDef } from "../triggers";
import { parseTickRecord, tickId, tickKey } from "./tick-record";
import type { TickRecord } from "./tick-record";

/** What firing a tick did. */
export interface TickOutcome {
  id: string;
  tick: number;
  /** `done`; `running` when another replica holds the tick (or took it over from this one). */
  state: "done" | "running";
  /** Tasks new to the stream, by this call. */
  published: number;
  /** Tasks the stream already had; for a tick already done, every task of it. */
  duplicates: number;
  superseded: number;
  supersededBySource: Map<string, number>;
}

/** What the tick runner needs. */
export interface TickRunnerDeps {
  /** The ticks bucket. */
  kv: KV;
  querySets: QuerySetTable;
  ledgers: LedgerTable;
  /** Publishes one task to the FETCH stream. */
  publish(task: FetchTask): Promise<TaskAck>;
  /** Refreshes a self ledger from its producer; throws when it cannot. */
  refresh(ledger: LedgerState): Promise<void>;
  /** This replica's node id. */
  owner: string;
  log: Logger;
  /** Leads published at once. */
  maxInFlight: number;
  /** How long a tick stays with its owner without a renewal, ms. */
  leaseMs: number;
  /** How often progress is saved (and the lease renewed), ms. */
  checkpointMs: number;
  now?: () => number;
}

// Done records kept per trigger: the newest ones answer "already fired" for as long as a grid tick
// can be fired again (a restart with run_on_start), however long after the stream's duplicate window.
const DONE_KEPT = 3;
const RETRY_MAX_MS = 5_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The owner lost the tick to another replica (its lease ran out); it stops publishing. */
class LeaseLost extends Error {}

/**
 * Runs ticks durably. A tick's record in the ticks bucket says who publishes it and how far it
 * got (query set, last lead in id order); the owner saves progress every `checkpointMs`. A replica
 * that fires a tick already recorded does nothing (so a tick fired again long after the stream's
 * duplicate window publishes nothing twice); one that finds a running tick whose lease ran out
 * takes it over and resumes after the last saved lead. The few tasks published after the last
 * save are published again with the same ids and dropped by the stream as duplicates.
 */
export class TickRunner {
  private readonly now: () => number;
  private stopping = false;
  private readonly active = new Set<Promise<unknown>>();

  constructor(private readonly deps: TickRunnerDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Fires tick `tick` of `t` (forced: a new tick of its own at `tick`). */
  async fire(t: TriggerDef, tick: number, forced = false): Promise<TickOutcome> {
    const key = tickKey(t.name, tick, forced);
    const fresh: TickRecord = {
      id: tickId(t.name, tick, forced),
      trigger: t.name,
      tick,
      forced,
      state: "running",
      owner: this.deps.owner,
      leaseUntil: this.now() + this.deps.leaseMs,
      querySets: [...t.querySets],
      querySet: 0,
      after: "",
      refreshed: false,
      published: 0,
      duplicates: 0,
      superseded: 0,
      startedAt: this.now(),
      finishedAt: 0,
    };
    try {
      const rev = await this.deps.kv.create(key, JSON.stringify(fresh));
      return await this.track(this.run(t, key, fresh, rev));
    } catch (err) {
      if (!isCasConflict(err) && !/exists/i.test(String((err as Error).message))) throw err;
    }
    const entry = await this.deps.kv.get(key);
    // Deleted meanwhile (a purge of old records): create again.
    if (entry === null || entry.operation !== "PUT") return this.fire(t, tick, forced);
    const cur = parseTickRecord(entry.string());
    if (cur === null) {
      // Not a record (damaged, or written by something else): this tick starts over in its place.
      this.deps.log.warn({ tick: fresh.id }, "tick record unreadable; starting the tick afresh");
      try {
        const rev = await this.deps.kv.update(key, JSON.stringify(fresh), entry.revision);
        return await this.track(this.run(t, key, fresh, rev));
      } catch (err) {
        if (!isCasConflict(err)) throw err;
        return this.fire(t, tick, forced);
      }
    }
    if (cur.state === "done" || cur.leaseUntil > this.now()) return this.outcomeOf(cur);
    return (await this.takeOver(t, key, cur, entry.revision)) ?? this.outcomeOf(cur);
  }

  /** Takes over every running tick whose lease ran out (a replica died mid-tick); resolves when they are done. */
  async resumeAbandoned(triggers: ReadonlyMap<string, TriggerDef>): Promise<void> {
    const work: Promise<unknown>[] = [];
    for await (const key of await this.deps.kv.keys()) {
      const entry = await this.deps.kv.get(key);
      const rec = entry === null || entry.operation !== "PUT" ? null : parseTickRecord(entry.string());
      if (rec === null || entry === null || rec.state !== "running" || rec.leaseUntil > this.now()) continue;
      const t = triggers.get(rec.trigger);
      // A trigger this config no longer has: nobody can finish its tick, leave it to the operator.
      if (t === undefined) continue;
      work.push(this.takeOver(t, key, rec, entry.revision));
    }
    await Promise.all(work);
  }

  /** The newest recorded tick of every trigger. */
  async lastTicks(): Promise<Map<string, TickRecord>> {
    const out = new Map<string, TickRecord>();
    for await (const key of await this.deps.kv.keys()) {
      const entry = await this.deps.kv.get(key);
      const rec = entry === null || entry.operation !== "PUT" ? null : parseTickRecord(entry.string());
      if (rec === null) continue;
      const was = out.get(rec.trigger);
      if (was === undefined || rec.startedAt > was.startedAt) out.set(rec.trigger, rec);
    }
    return out;
  }

  /** Stops publishing: running ticks save their progress and give up their lease, for another replica to finish. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.allSettled([...this.active]);
  }

  private async track<T>(p: Promise<T>): Promise<T> {
    this.active.add(p);
    try {
      return await p;
    } finally {
      this.active.delete(p);
    }
  }

  private async takeOver(t: TriggerDef, key: string, cur: TickRecord, revision: number): Promise<TickOutcome | null> {
    const mine: TickRecord = { ...cur, owner: this.deps.owner, leaseUntil: this.now() + this.deps.leaseMs };
    let rev: number;
    try {
      rev = await this.deps.kv.update(key, JSON.stringify(mine), revision);
    } catch (err) {
      if (isCasConflict(err)) return null; // another replica took it first
      throw err;
    }
    this.deps.log.warn(
      { tick: cur.id, previousOwner: cur.owner, querySet: cur.querySet, published: cur.published },
      "took over a tick whose owner stopped renewing it; resuming after its last saved lead",
    );
    return this.track(this.run(t, key, mine, rev));
  }

  private outcomeOf(rec: TickRecord): TickOutcome {
    return {
      id: rec.id,
      tick: rec.tick,
      state: rec.state,
      published: 0,
      duplicates: rec.state === "done" ? rec.published + rec.duplicates : 0,
      superseded: 0,
      supersededBySource: new Map(),
    };
  }

  private async run(t: TriggerDef, key: string, rec: TickRecord, revision: number): Promise<TickOutcome> {
    const { deps } = this;
    let rev = revision;
    let lost = false;
    const out: TickOutcome = {
      id: rec.id,
      tick: rec.tick,
      state: "running",
      published: 0,
      duplicates: 0,
      superseded: 0,
      supersededBySource: new Map(),
    };
    // Saves are chained: each one needs the revision the previous one made.
    let saving: Promise<void> = Promise.resolve();
    const save = (release = false) => {
      saving = saving.then(async () => {
        if (lost) return;
        rec.leaseUntil = release ? 0 : this.now() + deps.leaseMs;
        try {
          rev = await deps.kv.update(key, JSON.stringify(rec), rev);
        } catch (err) {
          if (!isCasConflict(err)) throw err;
          lost = true;
        }
      });
      return saving;
    };
    const timer = setInterval(() => {
      save().catch((err: unknown) => deps.log.warn({ err, tick: rec.id }, "could not save tick progress; retrying"));
    }, deps.checkpointMs);
    try {
      if (!rec.refreshed) {
        for (const ledger of deps.ledgers.values()) {
          if (ledger.refresh !== t.name) continue;
          try {
            await deps.refresh(ledger);
          } catch (err) {
            deps.log.error(
              { err, ledger: ledger.name, tick: rec.id },
              "self ledger refresh failed; its query sets run with the leads it had",
            );
          }
        }
        rec.refreshed = true;
        await save();
      }
      const querySets = rec.querySets ?? t.querySets;
      for (; rec.querySet < querySets.length; rec.querySet++, rec.after = "") {
        await this.publishQuerySet(t, querySets[rec.querySet], rec, out, () => lost);
        if (lost || this.stopping) break;
      }
      if (lost) throw new LeaseLost();
      if (this.stopping && rec.querySet < querySets.length) {
        await save(true);
        return out;
      }
      rec.state = "done";
      rec.finishedAt = this.now();
      clearInterval(timer);
      await save();
      if (lost) throw new LeaseLost();
      out.state = "done";
      await this.forgetOldTicks(t.name).catch((err: unknown) =>
        deps.log.warn({ err, trigger: t.name }, "could not remove old tick records"),
      );
      return out;
    } catch (err) {
      if (err instanceof LeaseLost) {
        deps.log.warn({ tick: rec.id }, "another replica took this tick over; stopped publishing it");
        return out;
      }
      throw err;
    } finally {
      clearInterval(timer);
    }
  }

  /** Publishes the tasks of one query set after `rec.after`, lead by lead, advancing `rec.after` over a finished prefix. */
  private async publishQuerySet(t: TriggerDef, name: string, rec: TickRecord, out: TickOutcome, lost: () => boolean) {
    const qs = this.deps.querySets.get(name);
    const ledger = qs === undefined ? undefined : this.deps.ledgers.get(qs.ledger);
    if (qs === undefined || ledger === undefined) {
      // A live config head removed it after the tick fired: the rest of the tick still runs.
      this.deps.log.warn(
        { tick: rec.id, querySet: name, ledger: qs?.ledger },
        "query set or its ledger no longer configured; the tick skips it",
      );
      return;
    }
    const leads = ledger.store.after(rec.after);
    const tickRef = { trigger: t.name, time: rec.tick, id: rec.id };
    // Leads finish out of order across lanes; `after` only moves over a prefix that all finished.
    const finished = new Map<number, string>();
    let issued = 0;
    let frontier = 0;
    const lane = async () => {
      while (!lost() && !this.stopping) {
        const r = leads.next();
        if (r.done === true) return;
        const seq = issued++;
        for (const task of leadTasks(qs, r.value, tickRef, this.now())) {
          const ack = await this.publishWithRetry(task, rec);
          if (ack.duplicate) {
            rec.duplicates++;
            out.duplicates++;
          } else {
            rec.published++;
            out.published++;
            if (ack.superseded) {
              rec.superseded++;
              out.superseded++;
              out.supersededBySource.set(task.source, (out.supersededBySource.get(task.source) ?? 0) + 1);
            }
          }
        }
        finished.set(seq, r.value.id);
        for (let id = finished.get(frontier); id !== undefined; id = finished.get(frontier)) {
          rec.after = id;
          finished.delete(frontier++);
        }
      }
    };
    await Promise.all(Array.from({ length: this.deps.maxInFlight }, lane));
  }

  /** Publishes, waiting out an unreachable stream (the tick resumes where it was) rather than dropping the rest of the tick. */
  private async publishWithRetry(task: FetchTask, rec: TickRecord): Promise<TaskAck> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.deps.publish(task);
      } catch (err) {
        if ((isMachinaError(err) && !err.retryable) || this.stopping) throw err;
        if (attempt === 0)
          this.deps.log.warn({ err, tick: rec.id }, "cannot publish fetch tasks; the tick waits and retries");
        await sleep(Math.min(RETRY_MAX_MS, 100 * 2 ** attempt));
      }
    }
  }

  /** Removes done records of a trigger beyond the newest {@link DONE_KEPT}. */
  private async forgetOldTicks(trigger: string): Promise<void> {
    const done: { key: string; tick: number }[] = [];
    for await (const key of await this.deps.kv.keys(`${trigger}.>`)) {
      const entry = await this.deps.kv.get(key);
      const rec = entry === null || entry.operation !== "PUT" ? null : parseTickRecord(entry.string());
      if (rec?.state === "done") done.push({ key, tick: rec.tick });
    }
    done.sort((a, b) => b.tick - a.tick);
    for (const { key } of done.slice(DONE_KEPT)) await this.deps.kv.purge(key);
  }
}
