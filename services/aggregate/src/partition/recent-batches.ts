import type { JsonValue } from "@machina/protos";

/** How long a batch id is remembered after its message arrived: the streams' duplicate window. */
export const DEDUPE_SECONDS = 300;

/**
 * One stored part of a second's remembered ids. A second that applied many batches is split into
 * parts of at most {@link PART_BYTES}: a KV entry must stay under the server's max_payload (1 MB
 * by default), and a commit rewrites only the part that grew, not the whole second. Entries of
 * the first layout (one per second, no `part`) read as part 0.
 */
interface Part {
  second: number;
  part?: number;
  ids: string[];
}

/** Bytes one stored part may hold at most (ids counted at 3 bytes per UTF-16 unit, plus JSON quoting). */
export const PART_BYTES = 256 * 1024;

const worstBytes = (id: string) => id.length * 3 + 3;

/** A second's ids, in parts of at most PART_BYTES. */
interface SecondIds {
  parts: string[][];
  /** Worst-case bytes of the last part. */
  lastBytes: number;
}

/**
 * The batches a partition applied in the last {@link DEDUPE_SECONDS}, by id, so a batch that
 * reaches it twice is applied once: a producer upstream that regroups what it sends after a
 * redelivery (invoke's handler groups batches of many answers into one message) sends the same
 * batch in a message with another id, which the stream cannot drop. Stored with the state, in KV
 * entries per second of arrival time and part (`<type>.<n>.d.<second mod 300>.<part>`), so the
 * set survives a crash exactly as the state it guards, and reused slots leave no markers behind:
 * on load, a slot's newest second wins and parts left over from an older second are ignored.
 */
export class RecentBatches {
  private readonly bySecond = new Map<number, SecondIds>();
  private readonly seen = new Map<string, number>();
  /** Changed parts since the last takeChanged, as `second:part`. */
  private readonly dirty = new Set<string>();
  /** The second each slot holds. */
  private readonly slots = new Map<number, number>();

  /** Loads the stored parts (a slot's older seconds are ignored). */
  constructor(stored: readonly JsonValue[] = []) {
    const parts = stored as unknown as Part[];
    for (const p of parts) {
      const slot = p.second % DEDUPE_SECONDS;
      const held = this.slots.get(slot);
      if (held === undefined || p.second > held) this.slots.set(slot, p.second);
    }
    const byPart = new Map<number, Map<number, string[]>>();
    for (const p of parts) {
      if (this.slots.get(p.second % DEDUPE_SECONDS) !== p.second) continue;
      let m = byPart.get(p.second);
      if (m === undefined) byPart.set(p.second, (m = new Map()));
      const n = p.part ?? 0;
      let ids = m.get(n);
      if (ids === undefined) m.set(n, (ids = []));
      for (const id of p.ids) ids.push(id);
    }
    for (const [second, m] of byPart) {
      const ordered = [...m.entries()].sort((a, b) => a[0] - b[0]).map(([, ids]) => ids);
      const last = ordered[ordered.length - 1];
      this.bySecond.set(second, { parts: ordered, lastBytes: last.reduce((a, id) => a + worstBytes(id), 0) });
      for (const ids of ordered) for (const d of ids) this.seen.set(d, second);
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
    if (this.seen.has(id)) return;
    let ids = this.bySecond.get(second);
    if (ids === undefined) {
      // A second's slot last held the second DEDUPE_SECONDS before it (or earlier): forget that one.
      const slot = second % DEDUPE_SECONDS;
      const previous = this.slots.get(slot);
      if (previous !== undefined && previous !== second) {
        for (const part of this.bySecond.get(previous)?.parts ?? [])
          for (const x of part) if (this.seen.get(x) === previous) this.seen.delete(x);
        this.bySecond.delete(previous);
      }
      this.slots.set(slot, second);
      ids = { parts: [[]], lastBytes: 0 };
      this.bySecond.set(second, ids);
    }
    const bytes = worstBytes(id);
    if (ids.lastBytes + bytes > PART_BYTES && ids.parts[ids.parts.length - 1].length > 0) {
      ids.parts.push([]);
      ids.lastBytes = 0;
    }
    ids.parts[ids.parts.length - 1].push(id);
    ids.lastBytes += bytes;
    this.seen.set(id, second);
    this.dirty.add(`${second}:${ids.parts.length - 1}`);
  }

  /** The parts changed since the last call, as KV key suffix (`<slot>.<part>`) → stored value (cleared). */
  takeChanged(): Map<string, JsonValue> {
    const out = new Map<string, JsonValue>();
    for (const d of this.dirty) {
      const [second, part] = d.split(":").map(Number);
      const ids = this.bySecond.get(second)?.parts[part];
      if (ids !== undefined) out.set(`${second % DEDUPE_SECONDS}.${part}`, { second, part, ids });
    }
    this.dirty.clear();
    return out;
  }

  /** Ids remembered now. */
  get size(): number {
    return this.seen.size;
  }
}
