import type { SampleStore, SeriesDay } from "./sample-store";
import { SampleStore as Store } from "./sample-store";

/**
 * Keeps `retentionMs` of monitoring history: deletes every (series, day) whose whole day is
 * older. Clean rows have no TTL, so this is a delete per old day and series. Days deleted by
 * this process are remembered, so each is deleted once per process (data's entity index keeps
 * listing them).
 */
export class Retention {
  private readonly deleted = new Set<string>();

  constructor(
    private readonly store: SampleStore,
    private readonly retentionMs: number,
  ) {}

  /** One pass; the (series, day) entities deleted. */
  async run(now = Date.now()): Promise<SeriesDay[]> {
    const cutoff = now - this.retentionMs;
    const done: SeriesDay[] = [];
    for (const sd of await this.store.seriesDays()) {
      const id = `${sd.series}\u0000${sd.day}`;
      if (!Store.dayBefore(sd.day, cutoff) || this.deleted.has(id)) continue;
      await this.store.deleteDay(sd);
      this.deleted.add(id);
      done.push(sd);
    }
    return done;
  }
}
