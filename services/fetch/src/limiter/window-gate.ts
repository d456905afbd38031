import type { KV } from "@nats-io/kv";
import { isCasConflict } from "@machina/runtime";
import { KvCounters, type Counter } from "./kv-counters";
import { LoweredLimit, type Lowering } from "./lowered-limit";
import type { RateWindow } from "../source";
import {
  EMPTY_LOG,
  append,
  countSince,
  decodeLog,
  earliestFor,
  encodeLog,
  gridOf,
  remove,
  roomAt,
  type SlidingLog,
} from "./sliding-log";

/**
 * Where a batch of calls may land on the server's clock: no earlier than `lb`, no later than
 * `ub`. Every window decides on this span, so replica clock skew never enters the decision.
 */
export interface Span {
  readonly lb: number;
  readonly ub: number;
}

/** What one window's admission wrote, so it can be given back if another window refuses. */
export interface Taken {
  undo(): Promise<void>;
}

/** Usage of one window as the report shows it (server times). */
export interface GateUsage {
  readonly used: number;
  readonly windowStart: number;
  readonly resetsAt: number;
}

/** One rate window of one source, shared by every replica through a KV bucket. */
export interface WindowGate {
  readonly w: RateWindow;
  /** How many of `want` calls fit in `span`; `fresh` re-reads the bucket instead of the cache. */
  room(span: Span, want: number, fresh: boolean): Promise<number>;
  /** Earliest `lb` at which one more call fits, from the last view (call after room() said 0). */
  earliest(span: Span): number;
  /** The limit in force at server time `t`: the declared one, or lower while an upstream says so. */
  limitAt(t: number): number;
  /** The upstream's lowering in force at `t` or still to come, or null. */
  lowering(t: number): Lowering | null;
  /** Sets the upstream's lowering (null: back to the declared limit); never raises the limit above it. */
  lower(low: Lowering | null): void;
  /**
   * Records what an upstream counted: at most `remaining` more calls fit before server time
   * `until`, which may be up to `slack` ms early (a reset rounded to seconds), for every
   * replica. Only ever adds to the window's count.
   */
  floor(now: number, remaining: number, until: number, slack: number): Promise<void>;
  /** Local estimate of how many calls fit at server time `now`, from the last view (the limit when unknown). */
  roomHint(now: number): number;
  /**
   * Records `g` calls in `span` by compare-and-set; null when another replica wrote first.
   * `now` is the current server time (lower bound): what may be pruned depends on it, never
   * on the span, which may lie ahead.
   */
  take(span: Span, g: number, now: number): Promise<Taken | null>;
  /** Usage as of server time `now`, read fresh. */
  usage(now: number): Promise<GateUsage>;
  /** Refuses every call until server time `until` (an upstream said it is exhausted). */
  block(now: number, until: number): Promise<void>;
  /** Local estimate of how long until one call fits at server time `now` (0 when unknown). */
  waitHint(now: number): number;
  /** Moves one call recorded at `from` to `to` (later): it may have reached the upstream then. */
  extend(from: number, to: number): Promise<void>;
}

/** Opens the gate a window asks for: rolling (default) or clock-aligned. */
export function openGate(kv: KV, counters: KvCounters, source: string, w: RateWindow): WindowGate {
  return w.align === "clock" ? new ClockGate(counters, source, w) : new RollingGate(kv, source, w);
}

interface LogCell {
  readonly log: SlidingLog;
  /** KV revision the log was read or written at; 0 when the key is absent. */
  readonly revision: number;
}

const enc = new TextEncoder();
// Entries are kept this long past their window: another replica's "now" may trail ours by its
// clock uncertainty, and it still needs them.
const PRUNE_MARGIN_MS = 2_000;

/**
 * A rolling window: one KV key per (source, window) holding the {@link SlidingLog}, written only
 * by compare-and-set, so every replica's admissions are ordered and none is lost.
 */
class RollingGate implements WindowGate {
  private readonly key: string;
  private readonly grid: number;
  private readonly lim: LoweredLimit;
  private cell: LogCell | null = null;
  private readonly moves: [from: number, to: number][] = [];
  private moving: Promise<void> | null = null;

  constructor(
    private readonly kv: KV,
    source: string,
    readonly w: RateWindow,
  ) {
    this.key = `${source}.r${w.perMs}`;
    this.grid = gridOf(w.perMs);
    this.lim = new LoweredLimit(w.limit);
  }

  limitAt(t: number): number {
    return this.lim.at(t);
  }

  lowering(t: number): Lowering | null {
    return this.lim.held(t);
  }

  lower(low: Lowering | null): void {
    this.lim.set(low);
  }

  private async load(now: number): Promise<LogCell> {
    const e = await this.kv.get(this.key);
    let cell: LogCell;
    if (e === null) cell = { log: EMPTY_LOG, revision: 0 };
    else if (e.operation !== "PUT") cell = { log: EMPTY_LOG, revision: e.revision };
    else cell = { log: decodeLog(e.string(), this.w.limit, now), revision: e.revision };
    this.cell = cell;
    return cell;
  }

  async room(span: Span, want: number, fresh: boolean): Promise<number> {
    const cell = fresh || this.cell === null ? await this.load(span.lb) : this.cell;
    return roomAt(cell.log, span.lb, this.w.perMs, this.lim.at(span.lb), want);
  }

  earliest(span: Span): number {
    const log = this.cell?.log ?? EMPTY_LOG;
    const declared = earliestFor(log, this.w.perMs, this.w.limit, 1);
    const low = this.lim.current(span.lb);
    // A lowered limit lapses at its end: a call fits then if the declared limit has room.
    return low === null
      ? declared
      : Math.min(earliestFor(log, this.w.perMs, low.limit, 1), Math.max(low.until, declared));
  }

  roomHint(now: number): number {
    const limit = this.lim.at(now);
    return this.cell === null ? limit : roomAt(this.cell.log, now, this.w.perMs, limit, limit);
  }

  async take(span: Span, g: number, now: number): Promise<Taken | null> {
    const cell = this.cell ?? (await this.load(now));
    if (roomAt(cell.log, span.lb, this.w.perMs, this.lim.at(span.lb), g) < g) return null;
    const next = append(cell.log, span.ub, g, this.w.perMs, this.grid, now - PRUNE_MARGIN_MS);
    if (!(await this.write(cell, next))) return null;
    return { undo: () => this.adjust(now, (log) => remove(log, span.ub, g, this.grid)) };
  }

  async usage(now: number): Promise<GateUsage> {
    const cell = await this.load(now);
    const live = cell.log.filter(([latest]) => latest > now - this.w.perMs);
    const used = live.reduce((n, [, c]) => n + c, 0);
    return { used, windowStart: now - this.w.perMs, resetsAt: live.length > 0 ? live[0][0] + this.w.perMs : now };
  }

  async block(now: number, until: number): Promise<void> {
    // An entry of `limit` calls at until - W counts against every call sent before `until`.
    const latest = until - this.w.perMs;
    await this.adjust(now, (log) =>
      countSince(log, until - 1, this.w.perMs) >= this.w.limit
        ? null
        : append(log, latest, this.w.limit, this.w.perMs, this.grid, now - PRUNE_MARGIN_MS),
    );
  }

  async floor(now: number, remaining: number, until: number, slack: number): Promise<void> {
    // An entry whose latest time is `until - W` counts against every call sent before `until`.
    // It holds what the upstream counted beyond the calls already recorded that count until the
    // reset (as early as it may be), so the same answer seen twice, or by two replicas, adds
    // nothing the second time, and calls that are all ours add nothing at all.
    const latest = Math.ceil((until - this.w.perMs) / this.grid) * this.grid;
    const counted = latest - slack;
    await this.adjust(now, (log) => {
      const want = this.lim.at(now) - remaining;
      const have = log.reduce((n, [l, c]) => (l >= counted ? n + c : n), 0);
      return want <= have ? null : append(log, latest, want - have, this.w.perMs, this.grid, now - PRUNE_MARGIN_MS);
    });
  }

  extend(from: number, to: number): Promise<void> {
    this.moves.push([from, to]);
    this.moving ??= this.applyMoves();
    return this.moving;
  }

  // Moves are applied together, one compare-and-set for all that queued meanwhile: a burst of
  // slow answers must land within a window length, before anyone reuses their slots.
  private async applyMoves(): Promise<void> {
    try {
      while (this.moves.length > 0) {
        const batch = this.moves.splice(0);
        const latest = Math.max(...batch.map(([, to]) => to));
        const prune = latest - this.w.perMs - PRUNE_MARGIN_MS;
        await this.adjust(latest, (log) =>
          batch.reduce(
            (l, [from, to]) => append(remove(l, from, 1, this.grid), to, 1, this.w.perMs, this.grid, prune),
            log,
          ),
        );
      }
    } finally {
      this.moving = null;
    }
  }

  waitHint(now: number): number {
    if (this.cell === null) return 0;
    return Math.max(0, this.earliest({ lb: now, ub: now }) - now);
  }

  // Rewrites the log with `next(log)` (null: leave it) under CAS retries; for undo and block.
  private async adjust(now: number, next: (log: SlidingLog) => SlidingLog | null): Promise<void> {
    let cell = this.cell ?? (await this.load(now));
    for (let i = 0; i < 50; i++) {
      const want = next(cell.log);
      if (want === null) return;
      if (await this.write(cell, want)) return;
      cell = await this.load(now);
    }
  }

  private async write(cell: LogCell, log: SlidingLog): Promise<boolean> {
    const value = enc.encode(encodeLog(log));
    try {
      const revision =
        cell.revision === 0
          ? await this.kv.create(this.key, value)
          : await this.kv.update(this.key, value, cell.revision);
      this.cell = { log, revision };
      return true;
    } catch (err) {
      if (!isCasConflict(err)) throw err;
      this.cell = null;
      return false;
    }
  }
}

interface Slot {
  readonly key: string;
  readonly start: number;
  readonly end: number;
}

/**
 * A clock-aligned window (opt-in): a counter per epoch-aligned window. A span that crosses a
 * boundary is charged to both windows, since the upstream may count the call in either.
 */
class ClockGate implements WindowGate {
  private last: { slots: Slot[]; view: Counter[] } | null = null;
  private readonly lim: LoweredLimit;

  constructor(
    private readonly counters: KvCounters,
    private readonly source: string,
    readonly w: RateWindow,
  ) {
    this.lim = new LoweredLimit(w.limit);
  }

  limitAt(t: number): number {
    return this.lim.at(t);
  }

  lowering(t: number): Lowering | null {
    return this.lim.held(t);
  }

  lower(low: Lowering | null): void {
    this.lim.set(low);
  }

  private slots(span: Span): Slot[] {
    const start = Math.floor(span.lb / this.w.perMs) * this.w.perMs;
    const out: Slot[] = [];
    for (let s = start; s <= span.ub; s += this.w.perMs)
      out.push({ key: `${this.source}.w${this.w.perMs}.${s}`, start: s, end: s + this.w.perMs });
    return out;
  }

  async room(span: Span, want: number, fresh: boolean): Promise<number> {
    this.counters.prune(span.lb - this.w.perMs);
    const slots = this.slots(span);
    const view = await Promise.all(
      slots.map((x) => (fresh ? undefined : this.counters.cached(x.key)) ?? this.counters.load(x.key, x.end)),
    );
    this.last = { slots, view };
    const limit = this.lim.at(span.lb);
    return Math.max(0, Math.min(want, ...slots.map((_, i) => limit - view[i].used)));
  }

  earliest(span: Span): number {
    if (this.last === null) return -Infinity;
    let at = -Infinity;
    this.last.slots.forEach((x, i) => {
      const used = (this.last as { view: Counter[] }).view[i].used;
      if (used >= this.lim.at(span.lb)) at = Math.max(at, this.freesAt(x, used, span.lb));
    });
    return at;
  }

  roomHint(now: number): number {
    const [x] = this.slots({ lb: now, ub: now });
    return Math.max(0, this.lim.at(now) - (this.counters.cached(x.key)?.used ?? 0));
  }

  async take(span: Span, g: number): Promise<Taken | null> {
    const slots = this.slots(span);
    const limit = this.lim.at(span.lb);
    const done: Slot[] = [];
    for (const x of slots) {
      const cur = this.counters.cached(x.key) ?? (await this.counters.load(x.key, x.end));
      const ok = cur.used + g <= limit ? await this.counters.trySet(x.key, cur, cur.used + g, x.end) : null;
      if (ok === null) {
        await this.undo(done, g);
        return null;
      }
      done.push(x);
    }
    return { undo: () => this.undo(done, g) };
  }

  async usage(now: number): Promise<GateUsage> {
    const [x] = this.slots({ lb: now, ub: now });
    const c = await this.counters.load(x.key, x.end);
    return { used: c.used, windowStart: x.start, resetsAt: x.end };
  }

  async block(now: number, until: number): Promise<void> {
    // The first few slots are marked full so every replica stops at once; the limiter's
    // blocked key carries a longer pause.
    const slots = this.slots({ lb: now, ub: Math.max(now, until - 1) }).slice(0, 4);
    await Promise.all(
      slots.map((x) => this.counters.adjust(x.key, (used) => (used >= this.w.limit ? null : this.w.limit), x.end)),
    );
  }

  async floor(now: number, remaining: number, until: number, slack: number): Promise<void> {
    // The upstream's count includes ours: the window's counter is raised to it, never beyond.
    // A reset past this window's end (as early as it may be) also holds the next few windows.
    const want = this.lim.at(now) - remaining;
    const slots = this.slots({ lb: now, ub: Math.max(now, until - slack - 1) }).slice(0, 4);
    await Promise.all(slots.map((x) => this.counters.adjust(x.key, (used) => (used >= want ? null : want), x.end)));
  }

  async extend(from: number, to: number): Promise<void> {
    // The call was charged to every slot its span touched; a later one needs the next slot too.
    const had = this.slots({ lb: from, ub: from });
    const more = this.slots({ lb: from, ub: to }).filter((x) => !had.some((h) => h.key === x.key));
    await Promise.all(more.map((x) => this.counters.adjust(x.key, (used) => used + 1, x.end)));
  }

  waitHint(now: number): number {
    const [x] = this.slots({ lb: now, ub: now });
    const c = this.counters.cached(x.key);
    return c !== undefined && c.used >= this.lim.at(now) ? this.freesAt(x, c.used, now) - now : 0;
  }

  // When a full slot takes a call again: at its end, or sooner when a lowered limit lapses first.
  private freesAt(x: Slot, used: number, t: number): number {
    const low = this.lim.current(t);
    return low !== null && used < this.w.limit ? Math.min(x.end, low.until) : x.end;
  }

  private async undo(slots: readonly Slot[], g: number): Promise<void> {
    await Promise.all(slots.map((x) => this.counters.adjust(x.key, (used) => Math.max(0, used - g), x.end)));
  }
}
