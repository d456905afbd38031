/** A tick's progress as the ticks bucket keeps it, so that another replica can finish it. */
export interface TickRecord {
  /** `<trigger>@<time>`, plus `+force` for a forced tick; the prefix of its task ids. */
  id: string;
  trigger: string;
  /** Grid time (timer, cron) or the moment it was forced, epoch ms. */
  tick: number;
  forced: boolean;
  state: "running" | "done";
  /** Node id of the replica publishing it. */
  owner: string;
  /** The owner renews this; past it, another replica may take the tick over. */
  leaseUntil: number;
  /**
   * The query sets the tick publishes, as its trigger listed them when it fired: a replica
   * finishing it after a live config change publishes what it started with. Absent in records
   * written before it was kept (the trigger's list then).
   */
  querySets?: string[];
  /** Index (in `querySets`) of the query set being published. */
  querySet: number;
  /** Every lead of that query set up to this id (in id order) is published; "" for none yet. */
  after: string;
  /** Self ledgers of the trigger were refreshed for this tick. */
  refreshed: boolean;
  /** Tasks new to the FETCH stream, over every owner of the tick. */
  published: number;
  /** Tasks the stream already had (a copy from a previous owner, or another tick's queued task id). */
  duplicates: number;
  superseded: number;
  startedAt: number;
  finishedAt: number;
}

/** Bucket key of a tick: `<trigger>.<time>`, or `<trigger>.<time>-force`. */
export function tickKey(trigger: string, tick: number, forced: boolean): string {
  return `${trigger}.${tick}${forced ? "-force" : ""}`;
}

/** The tick id that prefixes its task ids. */
export function tickId(trigger: string, tick: number, forced: boolean): string {
  return `${trigger}@${tick}${forced ? "+force" : ""}`;
}

/** Parses a stored record; null for anything that is not one (a foreign or damaged value). */
export function parseTickRecord(text: string): TickRecord | null {
  try {
    const v = JSON.parse(text) as Partial<TickRecord>;
    if (typeof v.id !== "string" || typeof v.trigger !== "string" || typeof v.tick !== "number") return null;
    if (v.state !== "running" && v.state !== "done") return null;
    return v as TickRecord;
  } catch {
    return null;
  }
}
