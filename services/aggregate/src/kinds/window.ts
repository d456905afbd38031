import type { JsonObject, JsonValue, RecordBatch } from "@machina/protos";
import { formatDuration } from "@machina/config";
import { MachinaError } from "@machina/wire";
import type { Reducer, WindowSpec } from "../config/aggregator-kind";
import { DueQueue } from "./due-queue";
import { EventTime, shown } from "./event-time";
import type { InRecord, KindContext, StatefulKind } from "./kind";
import { NUMERIC_REDUCERS, fold, result } from "./reducers";
import type { Acc } from "./reducers";

/** One window of one key. */
interface Win {
  /** Records folded in. */
  n: number;
  /** Accumulator per field. */
  acc: Map<string, Acc>;
  /** Times its record was emitted (a correction emits it again). */
  rev: number;
  /** Emitted and kept only for corrections. */
  closed: boolean;
}

/** The windows of one key, by start. */
export interface WindowKeyState {
  key: JsonObject;
  wins: Map<number, Win>;
}

/** Watermark: the latest event time seen in the partition (absent before the first record). */
const WATERMARK = "wm";

/**
 * `window`: per key, epoch-aligned windows of `size` starting every `hop`; each reduces its
 * records field by field. The watermark is the latest event time the partition has seen; a
 * window closes once the watermark reaches its end plus the allowed lateness, and its record is
 * emitted then. A record for a window that closed already is late: dropped and counted, or with
 * `late: correct` folded into the kept window, which is emitted again (a new revision of the same
 * dump row) until `keep_closed` after closing. Windows without records never exist, so emit nothing.
 */
export class WindowKind implements StatefulKind<WindowKeyState> {
  private readonly size: number;
  private readonly hop: number;
  private readonly lateness: number;
  private readonly keep: number;
  private readonly correct: boolean;
  private readonly fields: ReadonlyMap<string, Reducer>;
  private readonly fallback: Reducer | undefined;
  private readonly skip: ReadonlySet<string>;
  private readonly time: EventTime;
  private readonly query: string;
  private readonly due = new DueQueue();

  constructor(
    private readonly type: string,
    spec: WindowSpec,
    keyFields: readonly string[],
  ) {
    this.size = spec.size;
    this.hop = spec.hop ?? spec.size;
    this.lateness = spec.allowed_lateness;
    this.correct = spec.late === "correct";
    this.keep = spec.keep_closed ?? spec.size;
    this.fields = new Map(Object.entries(spec.fields));
    this.fallback = spec.default;
    this.skip = new Set(keyFields);
    this.time = new EventTime(spec.time_field);
    this.query =
      this.hop === this.size ? formatDuration(this.size) : `${formatDuration(this.size)}/${formatDuration(this.hop)}`;
  }

  check(record: JsonObject, batch: Omit<RecordBatch, "records">, index: number): MachinaError | null {
    const t = this.time.check(record, batch, index);
    if (t !== null) return t;
    for (const [f, v] of Object.entries(record)) {
      if (v === null || typeof v === "number" || this.skip.has(f)) continue;
      const reducer = this.reducerOf(f);
      if (reducer !== undefined && NUMERIC_REDUCERS.has(reducer))
        return new MachinaError(
          "BAD_REQUEST",
          `record ${index}: ${f}: the ${reducer} reducer needs a number, got ${shown(v)}`,
          { retryable: false, details: { index, field: f, reducer } },
        );
    }
    return null;
  }

  eventTime(record: JsonObject, batch: Omit<RecordBatch, "records">): number {
    return this.time.of(record, batch);
  }

  apply(rec: InRecord, ctx: KindContext<WindowKeyState>): void {
    const wm = ctx.meta.get(WATERMARK) as number | undefined;
    let state = ctx.get(rec.keyId);
    let changed = false;
    for (const start of this.startsOf(rec.time)) {
      const end = start + this.size;
      const closedAlready = wm !== undefined && end + this.lateness <= wm;
      let win = state?.wins.get(start);
      if (closedAlready) {
        // A late record: into a kept window, or a window that had no record when it closed.
        const correctable = this.correct && end + this.lateness + this.keep > wm && (win === undefined || win.closed);
        if (!correctable) {
          ctx.count("late_dropped");
          continue;
        }
        state ??= { key: rec.key, wins: new Map() };
        if (win === undefined) {
          win = { n: 0, acc: new Map(), rev: 0, closed: true };
          state.wins.set(start, win);
          this.due.push({ due: end + this.lateness + this.keep, keyId: rec.keyId, tag: String(start) });
        }
        this.fold(win, rec);
        this.emitWindow(rec.keyId, state, start, win, ctx, "late_corrected");
        changed = true;
        continue;
      }
      state ??= { key: rec.key, wins: new Map() };
      if (win === undefined) {
        win = { n: 0, acc: new Map(), rev: 0, closed: false };
        state.wins.set(start, win);
        this.due.push({ due: end + this.lateness, keyId: rec.keyId, tag: String(start) });
      }
      this.fold(win, rec);
      changed = true;
    }
    if (changed && state !== undefined) ctx.set(rec.keyId, state);
    if (wm === undefined || rec.time > wm) ctx.meta.set(WATERMARK, rec.time);
  }

  fireDue(_clock: number, ctx: KindContext<WindowKeyState>): boolean {
    const wm = ctx.meta.get(WATERMARK) as number | undefined;
    for (;;) {
      const top = this.due.peek();
      if (top === undefined || wm === undefined || top.due > wm) return false;
      this.due.pop();
      const state = ctx.get(top.keyId);
      const start = Number(top.tag);
      const win = state?.wins.get(start);
      // A stale entry (its window already went) is skipped without counting as work.
      if (state === undefined || win === undefined) continue;
      if (!win.closed) {
        this.emitWindow(top.keyId, state, start, win, ctx, "closed");
        if (this.correct) {
          win.closed = true;
          this.due.push({ due: start + this.size + this.lateness + this.keep, keyId: top.keyId, tag: top.tag });
        } else {
          state.wins.delete(start);
        }
      } else {
        state.wins.delete(start);
      }
      if (state.wins.size === 0) ctx.delete(top.keyId);
      else ctx.set(top.keyId, state);
      return true;
    }
  }

  restore(states: ReadonlyMap<string, WindowKeyState>): void {
    this.due.clear();
    for (const [keyId, s] of states) {
      for (const [start, win] of s.wins) {
        const end = start + this.size + this.lateness;
        this.due.push({ due: win.closed ? end + this.keep : end, keyId, tag: String(start) });
      }
    }
  }

  encode(state: WindowKeyState): JsonValue {
    return {
      key: state.key,
      wins: [...state.wins].map(([start, w]) => ({
        start,
        n: w.n,
        rev: w.rev,
        closed: w.closed,
        acc: [...w.acc].map(([f, a]) => [f, a as JsonObject]),
      })),
    };
  }

  decode(value: JsonValue): WindowKeyState {
    const v = value as {
      key: JsonObject;
      wins: { start: number; n: number; rev: number; closed: boolean; acc: [string, Acc][] }[];
    };
    return {
      key: v.key,
      wins: new Map(v.wins.map((w) => [w.start, { n: w.n, rev: w.rev, closed: w.closed, acc: new Map(w.acc) }])),
    };
  }

  // Starts of the windows holding time t: every multiple of hop in (t - size, t].
  private startsOf(t: number): number[] {
    const out: number[] = [];
    for (let s = Math.floor(t / this.hop) * this.hop; s > t - this.size; s -= this.hop) out.push(s);
    return out.reverse();
  }

  private reducerOf(field: string): Reducer | undefined {
    return this.fields.get(field) ?? this.fallback;
  }

  private fold(win: Win, rec: InRecord): void {
    win.n++;
    for (const [f, v] of Object.entries(rec.record)) {
      if (v === null || this.skip.has(f)) continue;
      const reducer = this.reducerOf(f);
      if (reducer !== undefined) win.acc.set(f, fold(reducer, win.acc.get(f), v, rec.time));
    }
  }

  private emitWindow(
    keyId: string,
    state: WindowKeyState,
    start: number,
    win: Win,
    ctx: KindContext<WindowKeyState>,
    outcome: "closed" | "late_corrected",
  ): void {
    const record: JsonObject = { ...state.key };
    for (const [f, reducer] of this.fields) record[f] = result(reducer, win.acc.get(f));
    if (this.fallback !== undefined)
      for (const [f, a] of win.acc) if (!this.fields.has(f)) record[f] = result(this.fallback, a);
    const rev = win.rev++;
    ctx.emit(
      {
        // One row per key and window: a correction has the same row (fetched_at, source, query, seq)
        // and so replaces it, while its message id differs so the stream does not drop it.
        id: `${this.type}:w:${keyId}:${start}:${rev}`,
        type: this.type,
        source: "window",
        query: this.query,
        taskId: "",
        fetchedAt: start,
        records: [record],
        firstSeq: 0,
      },
      outcome,
    );
  }
}
