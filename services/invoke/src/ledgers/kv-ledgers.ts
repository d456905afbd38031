import type { KV, Kvm } from "@nats-io/kv";
import { KvWatchInclude } from "@nats-io/kv";
import type { Logger } from "@machina/log";
import type { JsonObject, Lead, LeadProblem } from "@machina/protos";
import { isCasConflict } from "@machina/runtime";
import { MachinaError } from "@machina/wire";
import { fitLead } from "./lead-shape";
import type { LedgerState, LedgerTable } from "./ledger-table";
import { noteRejected } from "./ledger-table";

/** What an edit changed. */
export interface EditResult {
  written: number;
  deleted: number;
  rejected: LeadProblem[];
}

// Writes to the bucket at once: enough to hide round trips, few enough not to flood the server.
const WRITE_LANES = 64;
const CAS_ATTEMPTS = 5;

/** Runs `fn` over `items` with at most `lanes` at once. */
async function eachLimited<T>(items: readonly T[], lanes: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(lanes, items.length) }, lane));
}

/**
 * KV key of a lead: `<ledger>.<base64url of the id>`. Reversible (a delete marker carries only
 * its key) and within the key alphabet whatever the id holds (dots, spaces, unicode).
 */
export function leadKey(ledger: string, id: string): string {
  return `${ledger}.${Buffer.from(id, "utf8").toString("base64url")}`;
}

function splitKey(key: string): { ledger: string; id: string } | null {
  const dot = key.indexOf(".");
  if (dot <= 0) return null;
  return { ledger: key.slice(0, dot), id: Buffer.from(key.slice(dot + 1), "base64url").toString("utf8") };
}

/**
 * The leads of `kv` and `self` ledgers in one KV bucket, watched so every invoke replica holds
 * every change at once. Edits validate each lead against its ledger's shape and write through the
 * bucket; this replica applies its own writes at once (read-your-writes), the watch brings the
 * others'. Each ledger has its own watch on its keys, so one added by a live config head loads
 * its stored leads without the others being read again, and a changed one is loaded afresh.
 */
export class KvLedgers {
  private readonly watches = new Map<LedgerState, () => void>();

  private constructor(
    private readonly kv: KV,
    private readonly ledgers: LedgerTable,
    private readonly log: Logger,
  ) {}

  /** Opens (or creates, with `replicas`, default 1) the bucket. */
  static async open(kvm: Kvm, bucket: string, ledgers: LedgerTable, log: Logger, replicas = 1): Promise<KvLedgers> {
    // One value per key; history would keep every edit of 100,000 leads for nothing.
    const kv = await kvm.create(bucket, { history: 1, replicas });
    return new KvLedgers(kv, ledgers, log);
  }

  /** Starts the watch of every kv and self ledger of the table; resolves once each holds every stored lead (`loaded`). */
  async start(): Promise<void> {
    await Promise.all([...this.ledgers.values()].filter((l) => l.source !== "constant").map((l) => this.follow(l)));
  }

  /**
   * Watches one kv or self ledger's keys into its store (a ledger object need not be in the
   * table yet: a live head loads it before it is swapped in); resolves once it holds every stored
   * lead. Each lead is checked against the ledger's shape as it loads: one that does not fit (the
   * shape changed since it was written) is noted in `rejected` and left out, in the bucket too.
   */
  async follow(ledger: LedgerState): Promise<void> {
    if (ledger.source === "constant" || this.watches.has(ledger)) return;
    const filter = `${ledger.name}.>`;
    // A watch on keys that have no entry delivers nothing to say it caught up: ask first.
    const stored = await this.anyKey(filter);
    const iter = await this.kv.watch({ key: filter, include: KvWatchInclude.LastValue });
    this.watches.set(ledger, () => iter.stop());
    let ready: () => void = () => undefined;
    const initial = new Promise<void>((resolve) => (ready = resolve));
    let caughtUp = false;
    const loaded = () => {
      if (caughtUp) return;
      caughtUp = ledger.loaded = true;
      if (ledger.rejectedTotal > 0)
        this.log.warn(
          { ledger: ledger.name, rejected: ledger.rejectedTotal, origin: ledger.origin },
          "stored leads left out: they do not fit the ledger's fields",
        );
      ready();
    };
    if (!stored) loaded();
    void (async () => {
      for await (const e of iter) {
        this.apply(ledger, e.key, e.operation === "PUT" ? e.string() : null);
        // The last stored value comes with nothing pending (and is already flagged an update).
        if (e.isUpdate || (e.delta ?? 0) === 0) loaded();
      }
    })().catch((err: unknown) =>
      this.log.error({ err, ledger: ledger.name }, "ledger watch ended; edits from other replicas are not seen"),
    );
    await initial;
  }

  /** Stops watching a ledger (removed or replaced by a live head); its leads stay in the bucket. */
  unfollow(ledger: LedgerState): void {
    this.watches.get(ledger)?.();
    this.watches.delete(ledger);
  }

  /** Stops every watch. */
  stop(): void {
    for (const stop of this.watches.values()) stop();
    this.watches.clear();
  }

  private async anyKey(filter: string): Promise<boolean> {
    for await (const _ of await this.kv.keys(filter)) return true;
    return false;
  }

  private apply(ledger: LedgerState, key: string, json: string | null): void {
    const k = splitKey(key);
    if (k === null || k.ledger !== ledger.name) return;
    if (json === null) {
      ledger.store.delete(k.id);
      return;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(json);
    } catch {
      raw = json;
    }
    const fit = fitLead(ledger.shape, raw);
    if ("problem" in fit || fit.id !== k.id) {
      ledger.store.delete(k.id);
      noteRejected(ledger, { id: k.id, error: "problem" in fit ? fit.problem : `stored under id "${k.id}"` });
    } else ledger.store.set(fit.id, fit.argsJson);
  }

  private editable(ledger: LedgerState): void {
    if (ledger.source !== "kv")
      throw new MachinaError(
        "BAD_REQUEST",
        `ledger "${ledger.name}" is a ${ledger.source} ledger; only kv ledgers are edited (${ledger.origin})`,
        { details: { ledger: ledger.name, source: ledger.source } },
      );
  }

  /** The lead's fields with its id field set from `lead.id` where the args leave it out. */
  private withId(ledger: LedgerState, lead: Lead): { args: JsonObject } | { problem: string } {
    const args: JsonObject = { ...(lead.args ?? {}) };
    const field = ledger.shape.leadId;
    const inArgs = Object.hasOwn(args, field) ? args[field] : undefined;
    if (lead.id === "") return { args };
    if (inArgs !== undefined && inArgs !== null && String(inArgs) !== lead.id)
      return { problem: `id "${lead.id}" and field "${field}" (${JSON.stringify(inArgs)}) disagree` };
    if (inArgs === undefined || inArgs === null) args[field] = lead.id;
    return { args };
  }

  /** Writes whole leads (create or replace). */
  async put(ledger: LedgerState, leads: readonly Lead[]): Promise<EditResult> {
    this.editable(ledger);
    const res: EditResult = { written: 0, deleted: 0, rejected: [] };
    const seen = new Set<string>();
    const fitted: { id: string; json: string }[] = [];
    for (const [i, lead] of leads.entries()) {
      const given = this.withId(ledger, lead);
      const fit = "problem" in given ? given : fitLead(ledger.shape, given.args);
      const id = "id" in fit ? fit.id : lead.id || `leads[${i}]`;
      if ("problem" in fit) res.rejected.push({ id, error: fit.problem });
      else if (seen.has(fit.id))
        res.rejected.push({ id, error: `leads[${i}]: repeats an earlier lead of this request` });
      else {
        seen.add(fit.id);
        fitted.push({ id: fit.id, json: fit.argsJson });
      }
    }
    await eachLimited(fitted, WRITE_LANES, async ({ id, json }) => {
      await this.kv.put(leadKey(ledger.name, id), json);
      ledger.store.set(id, json);
      res.written++;
    });
    return res;
  }

  /**
   * Merges fields into existing leads (a null field removes it, as in JSON merge patch), each
   * checked against the shape after the merge; compare-and-set, so concurrent patches of one
   * lead from two replicas both land.
   */
  async patch(ledger: LedgerState, leads: readonly Lead[]): Promise<EditResult> {
    this.editable(ledger);
    const res: EditResult = { written: 0, deleted: 0, rejected: [] };
    await eachLimited([...leads.entries()], WRITE_LANES, async ([i, lead]) => {
      const id = lead.id || `leads[${i}]`;
      if (lead.id === "") return void res.rejected.push({ id, error: 'missing "id": the lead to patch' });
      const key = leadKey(ledger.name, lead.id);
      for (let attempt = 1; ; attempt++) {
        const cur = await this.kv.get(key);
        if (cur === null || cur.operation !== "PUT")
          return void res.rejected.push({ id, error: `no lead "${lead.id}" in ledger "${ledger.name}"` });
        const merged: JsonObject = { ...(JSON.parse(cur.string()) as JsonObject) };
        for (const [k, v] of Object.entries(lead.args ?? {})) {
          if (v === null) delete merged[k];
          else merged[k] = v;
        }
        const fit = fitLead(ledger.shape, merged);
        if ("problem" in fit) return void res.rejected.push({ id, error: fit.problem });
        if (fit.id !== lead.id)
          return void res.rejected.push({ id, error: `a patch cannot change the id field "${ledger.shape.leadId}"` });
        try {
          await this.kv.update(key, fit.argsJson, cur.revision);
        } catch (err) {
          if (isCasConflict(err) && attempt < CAS_ATTEMPTS) continue;
          throw err;
        }
        ledger.store.set(fit.id, fit.argsJson);
        res.written++;
        return;
      }
    });
    return res;
  }

  /** Deletes leads by id. */
  async delete(ledger: LedgerState, ids: readonly string[]): Promise<EditResult> {
    this.editable(ledger);
    const res: EditResult = { written: 0, deleted: 0, rejected: [] };
    await eachLimited([...new Set(ids)], WRITE_LANES, async (id) => {
      if (ledger.store.json(id) === undefined) {
        const cur = await this.kv.get(leadKey(ledger.name, id));
        if (cur === null || cur.operation !== "PUT")
          return void res.rejected.push({ id, error: `no lead "${id}" in ledger "${ledger.name}"` });
      }
      await this.kv.delete(leadKey(ledger.name, id));
      ledger.store.delete(id);
      res.deleted++;
    });
    return res;
  }

  /** Makes a self ledger hold exactly `rows` (id → canonical JSON): writes what changed, deletes what is gone. */
  async replace(ledger: LedgerState, rows: ReadonlyMap<string, string>): Promise<EditResult> {
    const res: EditResult = { written: 0, deleted: 0, rejected: [] };
    const changed = [...rows].filter(([id, json]) => ledger.store.json(id) !== json);
    const gone = ledger.store.ids().filter((id) => !rows.has(id));
    await eachLimited(changed, WRITE_LANES, async ([id, json]) => {
      await this.kv.put(leadKey(ledger.name, id), json);
      ledger.store.set(id, json);
      res.written++;
    });
    await eachLimited(gone, WRITE_LANES, async (id) => {
      await this.kv.delete(leadKey(ledger.name, id));
      ledger.store.delete(id);
      res.deleted++;
    });
    return res;
  }
}
