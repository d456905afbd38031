import type { JsonValue } from "@machina/protos";

/** How long a batch id is remembered after its message arrived: the streams' duplicate window. */
export const DEDUPE_SECONDS = 300;

/** One stored second of remembered ids. */
interface Second {
  second: number;
  ids: string[];
}

/**
 * The batches a partition applied in the last {@link DEDUPE_SECONDS}, by id, so a batch that
 * reaches it twice is applied once: a producer upstream that regroups what it sends after a
 * redelivery (invoke's handler groups batches of many answers into one message) sends the same
 * batch in a message with another id, which the stream cannot drop. Stored with the state, one
 * KV entry per second of arrival time (`<type>.<n>.d.<second mod 300>`), so the set survives a
 * crash exactly as the state it guards, and reused slots leave no markers behind.
 */
export class RecentBatches {
  private readonly bySecond = new Map<number, string[]>();
  private readonly seen = new Map<string, number>();
  private readonly dirty = new Set<number>();
  /** The second each slot holds. */
  private readonly slots = new Map<number, number>();

  /** Loads the stored seconds (stale ones are ignored). */
  constructor(stored: readonly JsonValue[] = []) {
    for (const v of stored) {
      const s = v as unknown as Second;
      const list = [...s.ids];
      this.bySecond.set(s.second, list);
      this.slots.set(s.second % DEDUPE_SECONDS, s.second);
      for (const d of list) this.seen.set(d, s.second);
    }
  }

  /** True when batch `id` was applied within the window before `arrivalMs`. */
  has(id: string, arrivalMs: number): boolean {
    const at = this.seen.get(id);
    return at !== undefined && Math.floor(arrivalMs / 1000) - at < DEDUPE_SECONDS;
  }

  /** Remembers batch `id`, applied from a message that arrived at `arrivalMs`. */
  add(id: string, arrivalMs: number): void {
    const second = Math.floor(arrivalMs / 1000);
    const d = id;
    if (this.seen.has(d)) return;
    let list = this.bySecond.get(second);
    if (list === undefined) {
      // A second's slot last held the second DEDUPE_SECONDS before it (or earlier): forget that one.
      const slot = second % DEDUPE_SECONDS;
      const previous = this.slots.get(slot);
      if (previous !== undefined && previous !== second) {
        for (const x of this.bySecond.get(previous) ?? []) if (this.seen.get(x) === previous) this.seen.delete(x);
        this.bySecond.delete(previous);
      }
      this.slots.set(slot, second);
      list = [];
      this.bySecond.set(second, list);
    }
    list.push(d);
    this.seen.set(d, second);
    this.dirty.add(second);
  }

  /** The seconds changed since the last call, as KV slot → stored value (cleared). */
  takeChanged(): Map<number, JsonValue> {
    const out = new Map<number, JsonValue>();
    for (const s of this.dirty) {
      const list = this.bySecond.get(s);
      if (list !== undefined) out.set(s % DEDUPE_SECONDS, { second: s, ids: list });
    }
    this.dirty.clear();
    return out;
  }

  /** Ids remembered now. */
  get size(): number {
    return this.seen.size;
  }
}
