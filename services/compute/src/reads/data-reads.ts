import type { JsonObject } from "@machina/protos";
import type { MeshClient } from "@machina/runtime";
import type { MeshNames } from "@machina/subjects";
import type { ReadSet } from "./read-set";
import { concatColumns, replyColumns, type Columns } from "./series-columns";

/** Entity keys per data.keys page, and so records per bulk readone, while a computation scans a type. */
export const SCAN_BATCH = 1000;

/** Points asked per data.series page: the most one reply may carry. */
const SERIES_PAGE = 50_000;

/** Options of a series read. */
export interface SeriesOptions {
  /** Epoch ms, inclusive; default 0 (the store's horizon). */
  from?: number;
  /** Epoch ms, exclusive; default 0 (now). */
  to?: number;
  /** "clean" (default: one point per merged window) or "dump" (one per raw record). */
  store?: "clean" | "dump";
}

/**
 * A computation's view of clean data through the data service. Every read is noted in the run's
 * ReadSet, so the result cache knows which change events make the result stale without each
 * computation declaring it.
 */
export class DataReads {
  constructor(
    private readonly client: MeshClient,
    private readonly names: MeshNames,
    /** What this run has read so far. */
    readonly reads: ReadSet,
  ) {}

  /** The newest clean record of one entity; data's NOT_FOUND when it has none. */
  async latest(type: string, key: JsonObject): Promise<JsonObject> {
    this.reads.entity(type, key);
    const reply = await this.client.request(
      this.names.data("readone", "clean", type),
      "KeyRequest",
      { key },
      "RecordReply",
    );
    return reply.record;
  }

  /** The newest clean records of many entities (at most 1000), and the keys with none. */
  async many(type: string, keys: JsonObject[]): Promise<{ records: JsonObject[]; missing: JsonObject[] }> {
    for (const k of keys) this.reads.entity(type, k);
    if (keys.length === 0) return { records: [], missing: [] };
    const reply = await this.client.request(
      this.names.data("readone", "clean", type),
      "KeyRequest",
      { keys },
      "RecordReply",
    );
    return { records: reply.records, missing: reply.missing };
  }

  /** One page of a type's entity keys, in data's key order; `page` is the previous page's next. */
  async keys(type: string, page: string, limit = SCAN_BATCH): Promise<{ keys: JsonObject[]; next: string }> {
    this.reads.type(type);
    const reply = await this.client.request(this.names.dataKeys(type), "KeysRequest", { limit, page }, "KeysReply");
    return { keys: reply.keys, next: reply.next };
  }

  /**
   * Calls `each` with the newest clean record of every entity of `type`, a batch at a time, so a
   * scan holds one batch, not the type. Answers how many records it saw.
   */
  async scan(type: string, each: (records: JsonObject[]) => void): Promise<number> {
    let page = "";
    let seen = 0;
    do {
      const batch = await this.keys(type, page);
      page = batch.next;
      if (batch.keys.length === 0) continue;
      const reply = await this.client.request(
        this.names.data("readone", "clean", type),
        "KeyRequest",
        { keys: batch.keys },
        "RecordReply",
      );
      seen += reply.records.length;
      each(reply.records);
    } while (page !== "");
    return seen;
  }

  /** The declared fields of a type (name → field type); data's NOT_FOUND for an unknown type. */
  async fields(type: string): Promise<Record<string, string>> {
    const schema = await this.client.request(this.names.dataSchema(type), "Empty", {}, "SchemaReply");
    const fields = (schema.history[0]?.definition?.fields ?? {}) as JsonObject;
    return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, String(v)]));
  }

  /** The declared key fields of a type, in order. */
  async keyFields(type: string): Promise<string[]> {
    const schema = await this.client.request(this.names.dataSchema(type), "Empty", {}, "SchemaReply");
    const key = schema.history[0]?.definition?.key;
    return Array.isArray(key) ? key.map(String) : [];
  }

  /** One numeric field of one entity over [from, to), oldest first, every page of data.series joined. */
  async series(type: string, key: JsonObject, field: string, options: SeriesOptions = {}): Promise<Columns> {
    const store = options.store ?? "clean";
    // Dump writes are not announced on data.changed, so nothing would tell the cache it is stale.
    if (store === "dump") this.reads.unannounced("reads raw dump rows, whose writes are not announced");
    else this.reads.entity(type, key);
    const pages: Columns[] = [];
    let page = "";
    do {
      const reply = await this.client.request(
        this.names.dataSeries(type),
        "SeriesRequest",
        { key, field, from: options.from ?? 0, to: options.to ?? 0, store, limit: SERIES_PAGE, page },
        "SeriesReply",
      );
      pages.push(replyColumns(reply));
      page = reply.next;
    } while (page !== "");
    return concatColumns(pages);
  }
}
