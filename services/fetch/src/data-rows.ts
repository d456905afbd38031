import { codec, type JsonObject } from "@machina/protos";
import type { ServiceContext } from "@machina/runtime";
import { toMachinaError } from "@machina/wire";
import type { DataRowValues, SourceDef } from "./source";

type Ctx = Pick<ServiceContext<unknown>, "client" | "nc" | "names" | "log">;

/** Options of {@link openDataRows}. */
export interface DataRowsOptions {
  /** How long start-up waits for the first reads; values still missing are retried in the background. Default 5000 ms. */
  readonly initialWaitMs?: number;
  /** Retry interval of a value that could not be read. Default 5000 ms. */
  readonly retryMs?: number;
}

/** Live `row` data values of every source, and how to stop following them. */
export interface DataRows extends DataRowValues {
  close(): void;
}

interface Row {
  readonly type: string;
  readonly key: Readonly<Record<string, string>>;
  /** Source data entries reading a field of this record: [source, data key, field]. */
  readonly uses: [string, string, string][];
  refreshMs: number;
  record: Record<string, unknown> | null;
  error: string;
  timer?: NodeJS.Timeout;
  reading?: Promise<void>;
}

/**
 * Reads the clean records that sources take `row` data from, through `data.readone.clean.<type>`,
 * and reads one again whenever data announces a change of it on `data.changed.<type>`, or its
 * `refresh` passes (announcements are at most once). A record that cannot be read leaves its
 * values unloaded, so fetches that need them fail as retryable until it can.
 */
export async function openDataRows(
  ctx: Ctx,
  sources: readonly SourceDef[],
  opts: DataRowsOptions = {},
): Promise<DataRows> {
  const retryMs = opts.retryMs ?? 5_000;
  const rows = new Map<string, Row>();
  const byUse = new Map<string, Row>();
  for (const def of sources) {
    for (const [dataKey, spec] of Object.entries(def.data)) {
      if (spec.kind !== "row") continue;
      const id = `${spec.type}\u0000${canonical(spec.key)}`;
      let row = rows.get(id);
      if (row === undefined) {
        row = {
          type: spec.type,
          key: spec.key,
          uses: [],
          refreshMs: spec.refreshMs,
          record: null,
          error: "not read yet",
        };
        rows.set(id, row);
      }
      row.refreshMs = Math.min(row.refreshMs, spec.refreshMs);
      row.uses.push([def.name, dataKey, spec.field]);
      byUse.set(`${def.name}\u0000${dataKey}`, row);
    }
  }
  let closed = false;
  const decode = codec("DataChanged");
  const subs = [...new Set([...rows.values()].map((r) => r.type))].map((type) =>
    ctx.nc.subscribe(ctx.names.dataChanged(type), {
      callback: (err, msg) => {
        if (err !== null) return;
        try {
          const ev = decode.decode(msg.data);
          const id = `${type}\u0000${canonical(ev.key ?? {})}`;
          const row = rows.get(id);
          if (row !== undefined) void read(row);
        } catch (e) {
          ctx.log.warn({ err: e, subject: msg.subject }, "ignored a malformed data change announcement");
        }
      },
    }),
  );

  const schedule = (row: Row) => {
    if (closed) return;
    clearTimeout(row.timer);
    row.timer = setTimeout(() => void read(row), row.record === null ? retryMs : row.refreshMs);
    row.timer.unref();
  };
  // Reads one at a time per record: an announcement during a read is answered by the next read.
  const read = (row: Row): Promise<void> => {
    const again = async (): Promise<void> => {
      try {
        const reply = await ctx.client.request(
          ctx.names.data("readone", "clean", row.type),
          "KeyRequest",
          { key: row.key as JsonObject },
          "RecordReply",
        );
        row.record = (reply.record ?? null) as Record<string, unknown> | null;
        row.error = row.record === null ? "the data layer has no such record" : "";
      } catch (err) {
        const e = toMachinaError(err);
        // Keep the last value through an outage; only a record that is gone stops being used.
        if (e.code === "NOT_FOUND") row.record = null;
        row.error = e.message;
        ctx.log.warn(
          { type: row.type, key: row.key, code: e.code, sources: [...new Set(row.uses.map(([s]) => s))] },
          "could not read a record that source data comes from; retrying",
        );
      } finally {
        schedule(row);
      }
    };
    row.reading = (row.reading ?? Promise.resolve()).then(again);
    return row.reading;
  };

  const first = Promise.all([...rows.values()].map((r) => read(r)));
  let waited: NodeJS.Timeout | undefined;
  await Promise.race([first, new Promise<void>((r) => (waited = setTimeout(r, opts.initialWaitMs ?? 5_000)))]);
  clearTimeout(waited);

  return {
    get(source, key) {
      const row = byUse.get(`${source}\u0000${key}`);
      if (row?.record == null) return undefined;
      const field = row.uses.find(([s, k]) => s === source && k === key)?.[2] ?? "";
      if (!Object.hasOwn(row.record, field)) return undefined;
      const v = row.record[field];
      if (v === null || v === undefined) return undefined;
      return typeof v === "string" ? v : typeof v === "object" ? JSON.stringify(v) : String(v);
    },
    why(source, key) {
      const row = byUse.get(`${source}\u0000${key}`);
      if (row === undefined) return "no such data entry";
      if (row.record !== null) return "the record has no value in that field";
      return row.error;
    },
    close() {
      closed = true;
      for (const r of rows.values()) clearTimeout(r.timer);
      for (const s of subs) s.unsubscribe();
    },
  };
}

// Key fields sorted, values as text: a config key `{ id: "7" }` matches an announced `{ id: 7 }`.
function canonical(key: Readonly<Record<string, unknown>>): string {
  return JSON.stringify(
    Object.keys(key)
      .sort()
      .map((k) => [k, String(key[k])]),
  );
}
