import type { JsonObject, Lead } from "@machina/protos";

/** One page of leads in id order. */
export interface LeadPage {
  leads: Lead[];
  /** The last id of this page, to start the next one after; "" on the last page. */
  next: string;
}

/**
 * The leads of one ledger, kept flat: one string of canonical JSON per lead, keyed by id, so a
 * 100,000-lead ledger costs a few MB instead of an object graph per lead. Leads are handed out in
 * id order (UTF-16 code-unit order, the same on every replica), which is also the order a tick
 * publishes them in and resumes from.
 */
export class LeadStore {
  private readonly byId = new Map<string, string>();
  private sorted: string[] | null = [];

  /** Leads held. */
  get size(): number {
    return this.byId.size;
  }

  /** Stores or replaces a lead; answers true when it changed. */
  set(id: string, argsJson: string): boolean {
    if (this.byId.get(id) === argsJson) return false;
    if (!this.byId.has(id)) this.sorted = null;
    this.byId.set(id, argsJson);
    return true;
  }

  /** Removes a lead; answers true when it was there. */
  delete(id: string): boolean {
    if (!this.byId.delete(id)) return false;
    this.sorted = null;
    return true;
  }

  /** The lead's canonical JSON, or undefined. */
  json(id: string): string | undefined {
    return this.byId.get(id);
  }

  /** The lead with this id, or undefined. */
  get(id: string): Lead | undefined {
    const json = this.byId.get(id);
    return json === undefined ? undefined : { id, args: JSON.parse(json) as JsonObject };
  }

  /** Every id in order; the array is a snapshot that later changes do not touch. */
  ids(): readonly string[] {
    this.sorted ??= [...this.byId.keys()].sort(compareIds);
    return this.sorted;
  }

  /** Leads with an id after `after` ("" or null: from the first), in id order, skipping any deleted meanwhile. */
  *after(after: string | null): Generator<Lead> {
    const ids = this.ids();
    for (let i = after === null || after === "" ? 0 : firstAfter(ids, after); i < ids.length; i++) {
      const lead = this.get(ids[i]);
      if (lead !== undefined) yield lead;
    }
  }

  /** Up to `limit` leads after the id `after`. */
  page(after: string, limit: number): LeadPage {
    const leads: Lead[] = [];
    if (limit <= 0) return { leads, next: "" };
    const it = this.after(after);
    for (let r = it.next(); !r.done; r = it.next()) {
      leads.push(r.value);
      if (leads.length === limit) {
        const more = !it.next().done;
        return { leads, next: more ? r.value.id : "" };
      }
    }
    return { leads, next: "" };
  }
}

/** The order leads are handed out in: plain code-unit order, so every replica agrees. */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Index of the first id strictly greater than `id` in sorted `ids`. */
function firstAfter(ids: readonly string[], id: string): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ids[mid] <= id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
