import { hash } from "node:crypto";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { MachinaError } from "@machina/wire";
import type { CursorOrder, CursorValue } from "./cursor-order";

/**
 * One stored cursor, as JSON under its key. The data service writes it when an answer's records
 * are all stored (services/data/src/store/cursor-advance.ts writes the same shape); fetch writes
 * it only when an operator resets the cursor to a value.
 */
export interface CursorEntry {
  readonly value: CursorValue;
  /** The comparable form of `value` (see cursor-order.ts); the cursor only moves to a greater one. */
  readonly order: CursorOrder;
  readonly source: string;
  readonly query: string;
  /** The lead id, as the ledger names it (the key holds only a digest of it). */
  readonly lead: string;
  /** The FetchTask whose stored records moved it, or `reset`. */
  readonly answer: string;
  /** Epoch ms it was written. */
  readonly at: number;
}

/** Options of {@link CursorStore.open}. */
export interface CursorStoreOptions {
  /** Bucket name (`names.buckets.fetchCursors`). */
  readonly bucket: string;
  /** Replicas of the bucket when this creates it. Default 1. */
  readonly replicas?: number;
}

/** The key of the cursor of (source, query, lead): lead ids are free text, so the key holds a digest. */
export function cursorKey(source: string, query: string, leadId: string): string {
  // 128 bits, as a lead's subject token: collisions stay out of reach for any realistic ledger.
  return `${source}.${query}.${hash("sha256", leadId, "base64url").slice(0, 22)}`;
}

/**
 * The cursors of incremental queries in a JetStream KV bucket, one key per (source, query, lead).
 * They never expire: a cursor that vanished would make its lead fetch everything from the initial
 * value again.
 */
export class CursorStore {
  private constructor(private readonly kv: KV) {}

  /** Opens the bucket, creating it when missing (data creates it the same way). */
  static async open(nc: NatsConnection, opts: CursorStoreOptions): Promise<CursorStore> {
    const kv = await new Kvm(nc).create(opts.bucket, { history: 1, replicas: opts.replicas ?? 1 });
    return new CursorStore(kv);
  }

  /** The stored cursor of (source, query, lead), or null when there is none (then the initial value applies). */
  async read(source: string, query: string, leadId: string): Promise<CursorEntry | null> {
    const e = await this.kv.get(cursorKey(source, query, leadId)).catch((err: unknown) => {
      throw unavailable(err, `read the cursor of ${source}.${query}`);
    });
    if (e === null || e.operation !== "PUT") return null;
    return entryOf(e.string());
  }

  /** The stored cursors of every lead of (source, query), at most `limit`, in key order. */
  async list(source: string, query: string, limit: number): Promise<{ entries: CursorEntry[]; truncated: boolean }> {
    const keys = await this.keys(source, query);
    const entries: CursorEntry[] = [];
    for (const key of keys.slice(0, limit)) {
      const e = await this.kv.get(key).catch((err: unknown) => {
        throw unavailable(err, `read the cursors of ${source}.${query}`);
      });
      const entry = e === null || e.operation !== "PUT" ? null : entryOf(e.string());
      if (entry !== null) entries.push(entry);
    }
    return { entries, truncated: keys.length > limit };
  }

  /** Sets the cursor of (source, query, lead) to `value` (an operator's reset). */
  async set(source: string, query: string, leadId: string, value: CursorValue, order: CursorOrder): Promise<void> {
    const entry: CursorEntry = { value, order, source, query, lead: leadId, answer: "reset", at: Date.now() };
    await this.kv.put(cursorKey(source, query, leadId), JSON.stringify(entry)).catch((err: unknown) => {
      throw unavailable(err, `reset the cursor of ${source}.${query}`);
    });
  }

  /** Removes the cursor of (source, query, lead): its next fetch uses the initial value. True when there was one. */
  async remove(source: string, query: string, leadId: string): Promise<boolean> {
    const had = (await this.read(source, query, leadId)) !== null;
    await this.kv.purge(cursorKey(source, query, leadId)).catch((err: unknown) => {
      throw unavailable(err, `reset the cursor of ${source}.${query}`);
    });
    return had;
  }

  /** Removes the cursor of every lead of (source, query); how many there were. */
  async removeAll(source: string, query: string): Promise<number> {
    const keys = await this.keys(source, query);
    for (const key of keys)
      await this.kv.purge(key).catch((err: unknown) => {
        throw unavailable(err, `reset the cursors of ${source}.${query}`);
      });
    return keys.length;
  }

  private async keys(source: string, query: string): Promise<string[]> {
    try {
      const out: string[] = [];
      for await (const k of await this.kv.keys(`${source}.${query}.*`)) out.push(k);
      return out.sort();
    } catch (err) {
      throw unavailable(err, `list the cursors of ${source}.${query}`);
    }
  }
}

/** A stored entry decoded, or null when it is not one (a foreign write; the initial value applies then). */
export function entryOf(text: string): CursorEntry | null {
  let v: Partial<CursorEntry>;
  try {
    v = JSON.parse(text) as Partial<CursorEntry>;
  } catch {
    return null;
  }
  if (v === null || typeof v !== "object") return null;
  const scalar = (x: unknown) => typeof x === "string" || (typeof x === "number" && Number.isFinite(x));
  if (!scalar(v.value) || !scalar(v.order)) return null;
  return {
    value: v.value as CursorValue,
    order: v.order as CursorOrder,
    source: String(v.source ?? ""),
    query: String(v.query ?? ""),
    lead: String(v.lead ?? ""),
    answer: String(v.answer ?? ""),
    at: typeof v.at === "number" ? v.at : 0,
  };
}

// A KV call that fails is NATS being away: retryable, and nothing moved.
function unavailable(err: unknown, what: string): MachinaError {
  if (err instanceof MachinaError) return err;
  return new MachinaError("UNAVAILABLE", `could not ${what}: ${(err as Error)?.message ?? String(err)}`, {
    cause: err,
    details: { dependency: "nats" },
  });
}
