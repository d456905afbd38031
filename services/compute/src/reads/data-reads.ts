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
    const from = options.from ?? 0;
    const to = options.to ?? 0;
    // Each part pages through data.series on its own, all at once, joined in time order: one
    // request reads its day partitions one after another, and several streams keep the store's
    // cores (and data's replicas) busy where one would leave them idle.
    const parts = await Promise.all(
      seriesParts(from, to).map(([a, b]) => this.seriesPages(type, key, field, a, b, store)),
    );
    return concatColumns(parts.flat());
  }

  private async seriesPages(
    type: string,
    key: JsonObject,
    field: string,
    from: number,
    to: number,
    store: "clean" | "dump",
  ): Promise<Columns[]> {
    const pages: Columns[] = [];
    let page = "";
    do {
      const reply = await this.client.request(
        this.names.dataSeries(type),
        "SeriesRequest",
        { key, field, from, to, store, limit: SERIES_PAGE, page },
        "SeriesReply",
      );
      pages.push(replyColumns(reply));
      page = reply.next;
    } while (page !== "");
    return pages;
  }
}

const DAY_MS = 86_400_000;

/** Series reads of one range in flight at once, at most. */
export const SERIES_PARTS = 4;

/**
 * [from, to) cut at UTC day boundaries (data's partitions) into at most SERIES_PARTS consecutive
 * ranges of whole days each, as even as the days allow; one range when it spans under two days or
 * an end is open (0: the horizon, or now).
 */
export function seriesParts(from: number, to: number): [number, number][] {
  if (from <= 0 || to <= from) return [[from, to]];
  const firstDay = Math.floor(from / DAY_MS);
  const days = Math.floor((to - 1) / DAY_MS) - firstDay + 1;
  const n = Math.min(SERIES_PARTS, days);
  if (n < 2) return [[from, to]];
  const out: [number, number][] = [];
  let start = from;
  for (let i = 1; i <= n; i++) {
    const end = i === n ? to : (firstDay + Math.round((days * i) / n)) * DAY_MS;
    out.push([start, end]);
    start = end;
  }
  return out;
}
