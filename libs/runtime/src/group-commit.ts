import { createHash } from "node:crypto";
import { classifyThrown } from "./classify";

/** Options of a {@link GroupCommit}. */
export interface GroupCommitOptions<T> {
  /** Stores one group durably (one publish, one database write); resolve only once it is stored. */
  flush(items: T[]): Promise<void>;
  /** Most items in one group. Default 512. */
  maxItems?: number;
  /** Groups being stored at once. Default 4. */
  maxInFlight?: number;
}

interface Pending<T> {
  item: T;
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * Stores items handed in one by one as few large groups, the way a database commits a group of
 * transactions with one log write: a group starts on the next turn of the event loop, and while
 * `maxInFlight` groups are being stored the next items wait and form a bigger one. So a quiet
 * stream pays no added latency and a busy one pays one store per many items. `add` resolves once
 * the item's group is stored, so a durable message handed in is acked only after its output is.
 *
 * A group that fails with an error a retry cannot fix is stored again item by item, so a single
 * bad item fails alone instead of taking its group with it; a retryable failure (an outage)
 * rejects the whole group, whose messages then wait and come back.
 */
export class GroupCommit<T> {
  private readonly flushFn: (items: T[]) => Promise<void>;
  private readonly maxItems: number;
  private readonly maxInFlight: number;
  private queue: Pending<T>[] = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(opts: GroupCommitOptions<T>) {
    this.flushFn = opts.flush;
    this.maxItems = Math.max(1, opts.maxItems ?? 512);
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 4);
  }

  /** Items waiting for a group to start. */
  get waiting(): number {
    return this.queue.length;
  }

  /** Queues one item; resolves once the group holding it is stored, rejects with that group's failure. */
  add(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // Items handed in during this turn (a pulled batch of messages) join the same group.
        setImmediate(() => {
          this.scheduled = false;
          this.pump();
        });
      }
    });
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const group = this.queue.splice(0, this.maxItems);
      this.inFlight++;
      void this.store(group).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async store(group: Pending<T>[]): Promise<void> {
    try {
      await this.flushFn(group.map((p) => p.item));
      for (const p of group) p.resolve();
      return;
    } catch (err) {
      if (group.length === 1 || classifyThrown(err).retryable) {
        for (const p of group) p.reject(err);
        return;
      }
    }
    // One item made the whole group fail for good: find it by storing each on its own.
    for (const p of group) {
      try {
        await this.flushFn([p.item]);
        p.resolve();
      } catch (err) {
        p.reject(err);
      }
    }
  }
}

/**
 * Deterministic Nats-Msg-Id of a message that carries several items: one item keeps its own id;
 * several get a digest of all their ids, so the same group published twice is dropped once by the
 * stream's duplicate window, while two different groups never share an id.
 */
export function groupMsgId(ids: readonly string[]): string {
  if (ids.length === 1) return ids[0];
  const h = createHash("sha256");
  for (const id of ids) h.update(id).update("\u0000");
  return `group-${ids.length}-${h.digest("base64url")}`;
}
