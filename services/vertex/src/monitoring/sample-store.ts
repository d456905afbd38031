import type { JsonObject } from "@machina/protos";
import type { MeshClient } from "@machina/runtime";
import type { MeshNames } from "@machina/subjects";
import { MachinaError, isMachinaError } from "@machina/wire";
import type { Sample } from "./series-names";

const DAY_MS = 86_400_000;
// Records per data.create.clean call: well under data's bulk limit and the NATS payload limit.
const WRITE_BATCH = 500;
// Most points data.series returns in one page.
const SERIES_PAGE = 50_000;
// Keys per data.keys page (its maximum).
const KEYS_PAGE = 1000;
const TIMEOUT_MS = 10_000;

/** UTC day `YYYY-MM-DD` of an epoch ms. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Epoch ms of the start of a UTC day. */
function dayStart(day: string): number {
  return Date.parse(`${day}T00:00:00Z`);
}

/** One stored (series, day) entity of the sample type. */
export interface SeriesDay {
  series: string;
  day: string;
}

/**
 * Monitoring samples in the data layer: clean rows of one entity type keyed by (series,
 * utc_day), one row per sample window, `value` a double. The day is part of the key so that
 * retention can delete whole old days (data.delete removes an entity's rows; clean rows have
 * no TTL of their own). Every failure to reach data is a retryable UNAVAILABLE naming data.
 */
export class SampleStore {
  constructor(
    private readonly client: MeshClient,
    private readonly names: MeshNames,
    /** The entity type, e.g. vertex_sample. */
    readonly type: string,
  ) {}

  /** Writes samples, each as the clean row of its (series, day) at its own time. */
  async write(samples: readonly Sample[]): Promise<void> {
    const subject = this.names.data("create", "clean", this.type);
    for (let i = 0; i < samples.length; i += WRITE_BATCH) {
      const records: JsonObject[] = samples.slice(i, i + WRITE_BATCH).map((s) => ({
        series: s.series,
        utc_day: utcDay(s.t),
        value: Number.isFinite(s.value) ? s.value : null,
        window_start: s.t,
      }));
      await this.call("store samples", () =>
        this.client.request(subject, "CreateRequest", { records }, "WriteReply", { timeoutMs: TIMEOUT_MS }),
      );
    }
  }

  /** Points of one series in [from, to), oldest first, read day by day. */
  async read(series: string, from: number, to: number): Promise<{ times: Float64Array; values: Float64Array }> {
    const times: number[] = [];
    const values: number[] = [];
    const subject = this.names.dataSeries(this.type);
    for (let d = Math.floor(from / DAY_MS) * DAY_MS; d < to; d += DAY_MS) {
      const key = { series, utc_day: utcDay(d) };
      let page = "";
      do {
        const r = await this.call("read samples", () =>
          this.client.request(
            subject,
            "SeriesRequest",
            { key, field: "value", from: Math.max(from, d), to: Math.min(to, d + DAY_MS), limit: SERIES_PAGE, page },
            "SeriesReply",
            { timeoutMs: TIMEOUT_MS },
          ),
        );
        const t = columnOf(r.times);
        const v = columnOf(r.values);
        for (let i = 0; i < t.length; i++) {
          times.push(t[i]);
          values.push(v[i]);
        }
        page = r.next;
      } while (page !== "");
    }
    return { times: Float64Array.from(times), values: Float64Array.from(values) };
  }

  /** Every (series, day) with stored rows (data's entity index also keeps days deleted since). */
  async seriesDays(): Promise<SeriesDay[]> {
    const out: SeriesDay[] = [];
    const subject = this.names.dataKeys(this.type);
    let page = "";
    do {
      const r = await this.call("list series", () =>
        this.client.request(subject, "KeysRequest", { limit: KEYS_PAGE, page }, "KeysReply", { timeoutMs: TIMEOUT_MS }),
      );
      for (const k of r.keys) {
        if (typeof k.series === "string" && typeof k.utc_day === "string")
          out.push({ series: k.series, day: k.utc_day });
      }
      page = r.next;
    } while (page !== "");
    return out;
  }

  /** Deletes every sample of one series on one day; the rows deleted. */
  async deleteDay(sd: SeriesDay): Promise<number> {
    const r = await this.call("delete old samples", () =>
      this.client.request(
        this.names.data("delete", "clean", this.type),
        "KeyRequest",
        { key: { series: sd.series, utc_day: sd.day } },
        "WriteReply",
        { timeoutMs: TIMEOUT_MS },
      ),
    );
    return r.affected;
  }

  /** Whether a day ends before `cutoff` (every sample of it is older). */
  static dayBefore(day: string, cutoff: number): boolean {
    return dayStart(day) + DAY_MS <= cutoff;
  }

  // Data not running, slow or refusing for a reason a retry may fix: one retryable UNAVAILABLE.
  private async call<T>(what: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (err) {
      if (isMachinaError(err) && !err.retryable) throw err;
      const reason = err instanceof Error ? err.message : String(err);
      throw new MachinaError(
        "UNAVAILABLE",
        `vertex could not ${what} in the data layer (type ${this.type}): ${reason}; monitoring history needs the data service running, retry later`,
        { retryable: true, cause: err, details: { dependency: "data", type: this.type } },
      );
    }
  }
}

// SeriesReply columns are little-endian float64; copied so the view is aligned whatever the buffer.
function columnOf(bytes: Uint8Array): Float64Array {
  const out = new Float64Array(bytes.length / 8);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(i * 8, true);
  return out;
}
