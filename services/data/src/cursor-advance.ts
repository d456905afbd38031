// Moves the cursors of incremental queries, and only once their records are stored. The answers
// of an incremental FetchTask carry cursor marks (RecordBatch.cursor, written by fetch's
// incremental/cursor-mark.ts): the cursor's KV key, the task whose window the records are, and
// which page of it and how many records of the type a batch carries. One mark also says what the
// task expects: every page's record count and the greatest cursor value among them. It rides on
// the answer of a one-request task, and on a record-less batch fetch sends after a paginated
// task's last page. The STORE worker hands every batch here after its dump rows are written, so a
// crash before that leaves the cursor where it was and the next fetch asks for the same window
// again (the dump keys are deterministic: a redelivery rewrites the same rows).
//
// Records of one task reach the dump in any order and often in several messages (pages; a
// stateful aggregator splits a batch by partition; a refused record goes to the dead-letter
// stream alone). What is stored so far is then kept per task in a second bucket, whose entries
// expire, and the cursor moves once it covers everything the expectation names. A task that
// never finishes (superseded on the stream, dead-lettered), or a record that never gets stored,
// keeps its task from moving the cursor: the lead's next task asks for the same window again.
import { createHash } from "node:crypto";
import type { KV, Kvm } from "@nats-io/kv";
import type { RecordBatch } from "@machina/protos";
import { MachinaError } from "@machina/wire";

/** A cursor value and its comparable form: the cursor moves only to a greater order (numbers by value, text by code units). */
export interface RankedValue {
  readonly value: string | number;
  readonly order: string | number;
}

/** What a task must have stored before its cursor moves, and where it moves then. */
export interface CursorExpect extends RankedValue {
  /** Records of the cursor's type by page number (a one-request task is page 1). */
  readonly pages: Readonly<Record<string, number>>;
}

/** A cursor mark as RecordBatch.cursor carries it. */
export interface CursorMark {
  /** The cursor's key in the cursors bucket. */
  readonly key: string;
  readonly source: string;
  readonly query: string;
  readonly lead: string;
  readonly type: string;
  /** The FetchTask whose window the records are. */
  readonly task: string;
  /** The cursor value the task's requests used. */
  readonly since: string | number;
  /** The page the batch's records came from; 0 for the record-less closing batch. */
  readonly page: number;
  /** Records of the type on that page. */
  readonly total: number;
  readonly expect?: CursorExpect;
}

/** Options of {@link CursorAdvance.open}. */
export interface CursorAdvanceOptions {
  /** The cursors bucket (`names.buckets.fetchCursors`; fetch reads it). */
  readonly cursors: string;
  /** The bucket of what each unfinished task stored so far (`names.buckets.fetchCursorParts`). */
  readonly parts: string;
  /** Replicas of the buckets when this creates them. Default 1. */
  readonly replicas?: number;
  /** How long the stored parts of an unfinished task are kept, ms. Default 36 h (as fetch's page progress). */
  readonly partsTtlMs?: number;
  /** Told (without the mark's values) of a mark it cannot read; that batch counts for no cursor. */
  readonly onMalformed?: (problem: string, batchId: string) => void;
}

const PARTS_TTL_MS = 36 * 3_600_000;
// Compare-and-set rounds lost to other replicas before giving up (the message then comes back).
const CAS_ROUNDS = 32;

/** Moves cursors once the records their marks count are stored. */
export class CursorAdvance {
  private constructor(
    private readonly cursors: KV,
    private readonly parts: KV,
    private readonly onMalformed: (problem: string, batchId: string) => void,
  ) {}

  /** Opens both buckets, creating them when missing (fetch creates the cursors bucket the same way). */
  static async open(kvm: Kvm, opts: CursorAdvanceOptions): Promise<CursorAdvance> {
    const replicas = opts.replicas ?? 1;
    const cursors = await kvm.create(opts.cursors, { history: 1, replicas });
    const parts = await kvm.create(opts.parts, { history: 1, replicas, ttl: opts.partsTtlMs ?? PARTS_TTL_MS });
    return new CursorAdvance(cursors, parts, opts.onMalformed ?? (() => undefined));
  }

  /**
   * Call once the dump rows of `batches` are stored; `refused[b]` lists the record indexes of
   * batch `b` that were not (dead-lettered). Resolves to how many cursors moved; throws a
   * retryable UNAVAILABLE when the KV cannot be reached, so the message comes back and the same
   * rows are written again before the next try.
   */
  async stored(batches: readonly RecordBatch[], refused: readonly (readonly number[])[] = []): Promise<number> {
    const tasks = new Map<string, Progress & { mark: CursorMark }>();
    for (const [b, batch] of batches.entries()) {
      if (batch.cursor === undefined || batch.cursor === null) continue;
      const mark = cursorMarkOf(batch.cursor);
      if (typeof mark === "string") {
        this.onMalformed(mark, batch.id);
        continue;
      }
      const id = windowId(mark);
      const t = tasks.get(id) ?? { mark, stored: {}, expect: undefined };
      tasks.set(id, t);
      if (mark.expect !== undefined) t.expect = mark.expect;
      if (mark.page < 1) continue;
      const skip = new Set(refused[b] ?? []);
      const ranges: Range[] = [];
      batch.records.forEach((_, i) => {
        if (!skip.has(i)) ranges.push([(batch.firstSeq || 0) + i, (batch.firstSeq || 0) + i + 1]);
      });
      t.stored = addRanges(t.stored, String(mark.page), ranges);
    }
    let moved = 0;
    for (const [id, t] of tasks) {
      // A one-request task stored whole in one message needs no bookkeeping.
      const expect = complete(t) ?? (await this.addParts(id, t));
      if (expect === null) continue;
      moved += await this.advance(t.mark, expect);
      // Only after the cursor moved: a crash before leaves the parts, and a redelivery completes them again.
      await this.parts.purge(id).catch(() => undefined);
    }
    return moved;
  }

  // Adds what a message stored to its task's parts; the expectation once they cover it, else null.
  private async addParts(id: string, t: Progress & { mark: CursorMark }): Promise<CursorExpect | null> {
    for (let round = 0; round < CAS_ROUNDS; round++) {
      const e = await kvCall(() => this.parts.get(id), "read the stored parts of an incremental task");
      const before = e !== null && e.operation === "PUT" ? progressOf(e.string()) : { stored: {}, expect: undefined };
      const merged: Progress = { stored: mergeStored(before.stored, t.stored), expect: t.expect ?? before.expect };
      const done = complete(merged);
      if (done !== null) return done;
      const text = JSON.stringify({ key: t.mark.key, task: t.mark.task, ...merged });
      try {
        if (e === null) await this.parts.create(id, text);
        else await this.parts.update(id, text, e.revision);
        return null;
      } catch {
        // Another replica stored a part first (or the KV is away: the next read says so).
      }
    }
    throw contended("the stored parts of an incremental task");
  }

  // Moves the cursor to the expected value unless it already stands there or further.
  private async advance(mark: CursorMark, to: CursorExpect): Promise<number> {
    for (let round = 0; round < CAS_ROUNDS; round++) {
      const e = await kvCall(() => this.cursors.get(mark.key), "read an incremental cursor");
      const old = e !== null && e.operation === "PUT" ? orderOf(e.string()) : null;
      if (old !== null && !after(to.order, old)) return 0;
      const entry = {
        value: to.value,
        order: to.order,
        source: mark.source,
        query: mark.query,
        lead: mark.lead,
        answer: mark.task,
        at: Date.now(),
      };
      try {
        if (e === null) await this.cursors.create(mark.key, JSON.stringify(entry));
        else await this.cursors.update(mark.key, JSON.stringify(entry), e.revision);
        return 1;
      } catch {
        // Lost to another replica's advance or an operator's reset; look again.
      }
    }
    throw contended("an incremental cursor");
  }
}

/** Reads a cursor mark; a string saying what is wrong when it is not one. */
export function cursorMarkOf(v: unknown): CursorMark | string {
  if (!isObject(v)) return "the cursor mark is not an object";
  for (const k of ["key", "source", "query", "lead", "type", "task"] as const)
    if (typeof v[k] !== "string") return `the cursor mark has no ${k} text`;
  if (v.key === "" || !/^[-/_=.a-zA-Z0-9]+$/.test(v.key as string)) return "the cursor mark's key is not a KV key";
  if (!isScalar(v.since)) return "the cursor mark's since is not text or a number";
  if (!isCount(v.page) || !isCount(v.total)) return "the cursor mark's page or total is not a count";
  if (v.expect !== undefined && v.expect !== null && expectOf(v.expect) === undefined)
    return "the cursor mark's expect is not { pages: { <page>: <count> }, value, order }";
  return v as unknown as CursorMark;
}

function expectOf(x: unknown): CursorExpect | undefined {
  if (!isObject(x) || !isScalar(x.value) || !isScalar(x.order) || !isObject(x.pages)) return undefined;
  if (!Object.entries(x.pages).every(([p, n]) => /^\d+$/.test(p) && isCount(n))) return undefined;
  return x as unknown as CursorExpect;
}

/** [from, to) positions of records in their page. */
type Range = [number, number];

/** What is known of a task: its stored positions by page, and what it expects once known. */
interface Progress {
  stored: Record<string, Range[]>;
  expect: CursorExpect | undefined;
}

// The parts key of a task's window: a digest, since task ids hold characters keys may not. The
// value its requests used is in it too, so a task refetched with another value (its first
// answer lost) never mixes its parts with the first one's.
function windowId(m: CursorMark): string {
  return createHash("sha256")
    .update(JSON.stringify([m.key, m.task, m.since]))
    .digest("base64url");
}

// The expectation when every page it names is stored whole; else null.
function complete(p: Progress): CursorExpect | null {
  const x = p.expect;
  if (x === undefined) return null;
  for (const [page, count] of Object.entries(x.pages)) if (!covers(p.stored[page] ?? [], count)) return null;
  return x;
}

function addRanges(stored: Record<string, Range[]>, page: string, ranges: readonly Range[]): Record<string, Range[]> {
  return { ...stored, [page]: union(stored[page] ?? [], ranges) };
}

function mergeStored(a: Record<string, Range[]>, b: Record<string, Range[]>): Record<string, Range[]> {
  let out = a;
  for (const [page, ranges] of Object.entries(b)) out = addRanges(out, page, ranges);
  return out;
}

function union(a: readonly Range[], b: readonly Range[]): Range[] {
  const all = [...a, ...b].map(([f, t]): Range => [f, t]).sort((x, y) => x[0] - y[0]);
  const out: Range[] = [];
  for (const [from, to] of all) {
    const last = out[out.length - 1];
    if (last !== undefined && from <= last[1]) last[1] = Math.max(last[1], to);
    else out.push([from, to]);
  }
  return out;
}

function covers(ranges: readonly Range[], total: number): boolean {
  return total === 0 || ranges.some(([from, to]) => from <= 0 && to >= total);
}

function progressOf(text: string): Progress {
  try {
    const v = JSON.parse(text) as { stored?: unknown; expect?: unknown };
    const stored: Record<string, Range[]> = {};
    if (isObject(v.stored))
      for (const [page, list] of Object.entries(v.stored))
        if (Array.isArray(list))
          stored[page] = list.filter(
            (r): r is Range => Array.isArray(r) && r.length === 2 && r.every((x) => Number.isSafeInteger(x)),
          );
    return { stored, expect: expectOf(v.expect) };
  } catch {
    return { stored: {}, expect: undefined };
  }
}

function orderOf(text: string): string | number | null {
  try {
    const o = (JSON.parse(text) as { order?: unknown }).order;
    return typeof o === "string" || (typeof o === "number" && Number.isFinite(o)) ? o : null;
  } catch {
    return null;
  }
}

// Strictly later. Orders of different kinds (the query's `compare` changed) cannot be compared,
// and the newer declaration wins.
function after(a: string | number, b: string | number): boolean {
  return typeof a === typeof b ? a > b : true;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function isScalar(x: unknown): boolean {
  return typeof x === "string" || (typeof x === "number" && Number.isFinite(x));
}

function isCount(x: unknown): boolean {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

async function kvCall<T>(run: () => Promise<T>, what: string): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw new MachinaError("UNAVAILABLE", `could not ${what}: ${(err as Error)?.message ?? String(err)}`, {
      cause: err,
      details: { dependency: "nats" },
    });
  }
}

function contended(what: string): MachinaError {
  return new MachinaError("UNAVAILABLE", `could not update ${what}: too many concurrent writers; retried later`, {
    details: { dependency: "nats" },
  });
}
