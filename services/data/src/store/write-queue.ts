import cassandra from "cassandra-driver";
import { classifyThrown } from "@machina/runtime";
import { MachinaError } from "@machina/wire";
import { execute, executeUnloggedBatch, type CqlClient, type CqlStatement } from "./cql-exec";

/** What a read through this replica sees of a row while its write is queued. */
export interface PendingView {
  /** Table and entity the row belongs to (see {@link pendingEntity}). */
  readonly entity: string;
  /** The row's identity within the entity: its day partition and clustering values. */
  readonly id: string;
  /** Day partition (`YYYY-MM-DD`) the row lives in. */
  readonly day: string;
  /** Column → driver value; an absent column is left as stored (an upsert of some columns). Null for a delete of the whole day partition. */
  readonly columns: ReadonlyMap<string, unknown> | null;
  /** The write replaces the whole row (an INSERT of every column): nothing of the stored row shows. */
  readonly full?: boolean;
}

/** One statement for the queue: the partition it writes, and what reads see until it is stored. */
export interface QueuedWrite {
  /** Partition the statement writes: statements of one partition are batched and stored in order. */
  readonly partition: string;
  readonly statement: CqlStatement;
  /** Shown to reads through this replica while queued; absent for rows no read merges (marks, index). */
  readonly view?: PendingView;
  /**
   * What the statement counts against a batch's size limit, when its bound values understate it
   * (one statement writing many partitions). Default: the size of its bound values.
   */
  readonly bytes?: number;
}

/** Options of a {@link WriteQueue}. */
export interface WriteQueueOptions {
  /** Statements queued or being written before a new write waits for room. Default 20000. */
  maxRows?: number;
  /** Batches being written at once. Default 32. */
  maxInFlight?: number;
  /** Statements in one single-partition batch. Default 100. */
  rowsPerBatch?: number;
  /** How long a write waits for room before it fails as UNAVAILABLE (retryable). Default 10000 ms. */
  maxWaitMs?: number;
  /** Bound values in one batch, roughly, in bytes; Cassandra refuses batches over 50 KiB by default. Default 32768. */
  maxBatchBytes?: number;
  /**
   * Batches of several partitions being written at once that are not full; past it a short batch
   * waits for one to finish, gathering the statements that arrive meanwhile. Writes trickling in
   * then still form full batches: Cassandra's cost is mostly per request, so many short batches
   * cost it several times what the same statements in full ones do (at 1, Cassandra spent 16 s
   * of CPU on the pipeline bench's 20,000 records where it spent 29 s at 4). Default 1.
   */
  maxShortInFlight?: number;
  /**
   * Whether one batch may carry several partitions: cheaper for the server per row, but only when
   * the coordinator holds every partition (replication factor ≥ nodes in the datacenter). Asked
   * before each round. Default: never.
   */
  mixPartitions?: () => boolean;
}

/** Queue depth, for /metrics. */
export interface WriteQueueStats {
  /** Statements queued or being written. */
  readonly rows: number;
  /** Batches being written. */
  readonly inFlight: number;
  /** Writes waiting for room. */
  readonly waiting: number;
  /** Batches written since the queue opened (one per partition group). */
  readonly batches: number;
  /** Statements written since the queue opened. */
  readonly statements: number;
}

/** Entity id of {@link PendingView}: a table and the stable JSON of a key. */
export function pendingEntity(table: string, keyJson: string): string {
  return `${table}\u0000${keyJson}`;
}

interface Ticket {
  remaining: number;
  settled: boolean;
  readonly doing: string;
  readonly views: Entry[];
  resolve(): void;
  reject(err: unknown): void;
}

interface Op {
  readonly statement: CqlStatement;
  readonly ticket: Ticket;
  /** Row the op writes (view id, or {@link DELETE} for a partition delete); null for writes that commute (marks, set additions). */
  readonly row: string | null;
  /** Rough size of its bound values, to keep batches under the server's batch size limit. */
  readonly bytes: number;
}

const DELETE = "\u0000delete";

interface Entry {
  readonly view: PendingView;
}

interface PartitionQueue {
  readonly key: string;
  readonly ops: Op[];
  busy: boolean;
}

interface Waiter {
  readonly n: number;
  /** Lets the write in; its rows are already counted. */
  readonly go: () => void;
  /** Wakes it to fail (the queue closed). */
  readonly stop: () => void;
}

/**
 * The data layer's operation queue, one per replica. Every write of every caller lands here;
 * statements of one partition are batched together whoever sent them, one batch per partition
 * at a time (so they land in the order given), with `maxInFlight` batches in flight. While a
 * write is queued, reads through this replica see it ({@link pending}). A write resolves once
 * every statement of it is stored, so a durable message is acked only after its rows are. The
 * queue holds at most `maxRows` statements: past that a write waits for room, then fails as
 * retryable, so a backlog never grows memory without bound.
 */
export class WriteQueue {
  private readonly maxRows: number;
  private readonly maxInFlight: number;
  private readonly rowsPerBatch: number;
  private readonly maxWaitMs: number;
  private readonly maxBatchBytes: number;
  private readonly mixPartitions: () => boolean;
  private readonly parts = new Map<string, PartitionQueue>();
  // Partitions with ops and no batch in flight, oldest first: a round looks only at these, not at
  // every queued partition (which made each round cost the whole backlog).
  private readonly ready = new Set<PartitionQueue>();
  private readonly views = new Map<string, Entry[]>();
  private readonly waiters: Waiter[] = [];
  private readonly drained: (() => void)[] = [];
  private rows = 0;
  private inFlight = 0;
  private shortInFlight = 0;
  private readonly maxShortInFlight: number;
  private batches = 0;
  private statements = 0;
  private scheduled = false;
  private closed = false;

  constructor(
    private readonly client: CqlClient,
    opts: WriteQueueOptions = {},
  ) {
    this.maxRows = Math.max(1, opts.maxRows ?? 20_000);
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 32);
    this.rowsPerBatch = Math.max(1, opts.rowsPerBatch ?? 100);
    this.maxWaitMs = Math.max(0, opts.maxWaitMs ?? 10_000);
    this.maxBatchBytes = Math.max(1, opts.maxBatchBytes ?? 32_768);
    this.mixPartitions = opts.mixPartitions ?? (() => false);
    this.maxShortInFlight = Math.max(1, opts.maxShortInFlight ?? 1);
  }

  /** Current depth. */
  stats(): WriteQueueStats {
    return {
      rows: this.rows,
      inFlight: this.inFlight,
      waiting: this.waiters.length,
      batches: this.batches,
      statements: this.statements,
    };
  }

  /** Queues statements; resolves once all are stored, rejects with the first failure (`doing` names the work in errors). */
  async write(writes: readonly QueuedWrite[], doing: string): Promise<void> {
    if (writes.length === 0) return;
    await this.room(writes.length, doing);
    return new Promise<void>((resolve, reject) => {
      const ticket: Ticket = { remaining: writes.length, settled: false, doing, views: [], resolve, reject };
      for (const w of writes) {
        let pq = this.parts.get(w.partition);
        if (pq === undefined) {
          pq = { key: w.partition, ops: [], busy: false };
          this.parts.set(w.partition, pq);
        }
        const row = w.view === undefined ? null : w.view.columns === null ? DELETE : w.view.id;
        pq.ops.push({ statement: w.statement, ticket, row, bytes: w.bytes ?? sizeOf(w.statement.params) });
        if (!pq.busy) this.ready.add(pq);
        if (w.view !== undefined) {
          const entry = { view: w.view };
          ticket.views.push(entry);
          const list = this.views.get(w.view.entity);
          if (list === undefined) this.views.set(w.view.entity, [entry]);
          else list.push(entry);
        }
      }
      this.schedule();
    });
  }

  /** Views of the entity's queued writes, oldest first. */
  pending(entity: string): PendingView[] {
    return (this.views.get(entity) ?? []).map((e) => e.view);
  }

  /** Refuses new writes; resolves once the queued ones are stored or failed. */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.stop();
    while (this.rows > 0) await new Promise<void>((r) => this.drained.push(r));
  }

  // Counts `n` rows in once there is room. A write larger than the whole queue is let in alone,
  // so no write waits forever.
  private async room(n: number, doing: string): Promise<void> {
    const closed = () => new MachinaError("UNAVAILABLE", "data layer is closed", { retryable: false });
    if (this.closed) throw closed();
    if (this.waiters.length === 0 && this.fits(n)) {
      this.rows += n;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        // Writes behind it that fit now go in.
        this.admitWaiters();
        reject(
          new MachinaError(
            "UNAVAILABLE",
            `data: ${doing}: the write queue stayed full (${this.rows} of ${this.maxRows} rows) for ${this.maxWaitMs} ms; the database is slower than the writes arriving`,
            { retryable: true, details: { dependency: "cassandra", queuedRows: this.rows } },
          ),
        );
      }, this.maxWaitMs);
      const waiter: Waiter = {
        n,
        go: () => {
          clearTimeout(timer);
          resolve();
        },
        stop: () => {
          clearTimeout(timer);
          reject(closed());
        },
      };
      this.waiters.push(waiter);
    });
  }

  private fits(n: number): boolean {
    return this.rows + n <= this.maxRows || this.rows === 0;
  }

  // Waiters enter in order: a small write never overtakes a large one that is waiting.
  private admitWaiters(): void {
    while (this.waiters.length > 0 && this.fits(this.waiters[0].n)) {
      const w = this.waiters.shift() as Waiter;
      this.rows += w.n;
      w.go();
    }
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // Writes handed in during this turn join the same batches.
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    const mix = this.mixPartitions();
    while (this.inFlight < this.maxInFlight) {
      // The next batch is planned first and taken only if it goes now.
      const plan: Array<[PartitionQueue, number]> = [];
      let rows = 0;
      let bytes = 0;
      for (const pq of this.ready) {
        const n = this.takeable(pq.ops, this.rowsPerBatch - rows, this.maxBatchBytes - bytes);
        if (n === 0) break;
        for (let i = 0; i < n; i++) bytes += pq.ops[i].bytes;
        rows += n;
        plan.push([pq, n]);
        if (!mix || rows >= this.rowsPerBatch || bytes >= this.maxBatchBytes) break;
      }
      if (rows === 0) return;
      // Only a batch of several partitions can fill; one of a single partition never waits.
      const short = mix && rows < this.rowsPerBatch && bytes < this.maxBatchBytes;
      if (short && this.shortInFlight >= this.maxShortInFlight) return;
      const batch: Op[] = [];
      for (const [pq, n] of plan) {
        for (const o of pq.ops.splice(0, n)) batch.push(o);
        pq.busy = true;
        this.ready.delete(pq);
      }
      if (short) this.shortInFlight++;
      this.inFlight++;
      void this.store(batch).finally(() => {
        for (const [pq] of plan) {
          pq.busy = false;
          if (pq.ops.length > 0) this.ready.add(pq);
          else if (this.parts.get(pq.key) === pq) this.parts.delete(pq.key);
        }
        if (short) this.shortInFlight--;
        this.inFlight--;
        this.pump();
      });
    }
  }

  // How many of a partition's next ops one batch may carry. A batch's mutations share one write
  // timestamp, so two writes of one row (or a delete and a write of its partition) in one batch
  // would be settled by value, not by order: the second goes in the next batch. The first op
  // always fits, however large, so no op is stuck.
  private takeable(ops: readonly Op[], room: number, bytesLeft: number): number {
    const rows = new Set<string>();
    let n = 0;
    let bytes = 0;
    for (const o of ops) {
      if (n >= room) break;
      if (n > 0 && bytes + o.bytes > bytesLeft) break;
      if (o.row !== null) {
        if (rows.has(o.row) || (n > 0 && o.row === DELETE) || rows.has(DELETE)) break;
        rows.add(o.row);
      }
      bytes += o.bytes;
      n++;
    }
    return n;
  }

  private async store(batch: Op[]): Promise<void> {
    try {
      await executeUnloggedBatch(
        this.client,
        batch.map((o) => o.statement),
        batch[0].ticket.doing,
      );
      this.batches++;
      this.statements += batch.length;
      for (const o of batch) this.done(o, null);
      return;
    } catch (err) {
      if (batch.length === 1 || classifyThrown(err).retryable) {
        for (const o of batch) this.done(o, err);
        return;
      }
    }
    // One statement made the batch fail for good: store each alone, so only its write fails.
    for (const o of batch) {
      try {
        await execute(this.client, o.statement.query, o.statement.params, o.ticket.doing);
        this.done(o, null);
      } catch (err) {
        this.done(o, err);
      }
    }
  }

  private done(op: Op, err: unknown): void {
    this.rows--;
    const t = op.ticket;
    t.remaining--;
    if (err !== null && !t.settled) {
      t.settled = true;
      t.reject(err);
    }
    // Views stay until the whole write is stored: the entity index and the row go together.
    if (t.remaining === 0) {
      this.forget(t.views);
      if (!t.settled) {
        t.settled = true;
        t.resolve();
      }
    }
    this.admitWaiters();
    if (this.rows === 0) for (const r of this.drained.splice(0)) r();
  }

  private forget(entries: readonly Entry[]): void {
    for (const e of entries) {
      const list = this.views.get(e.view.entity);
      if (list === undefined) continue;
      const i = list.indexOf(e);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.views.delete(e.view.entity);
    }
  }
}

// Bytes a statement's values take on the wire, near enough to keep batches under the limit.
// Dates and the driver's fixed-size types are counted without serializing them: JSON.stringify
// with a replacer for every timestamp was 5 % of the data service's CPU in the pipeline bench.
function sizeOf(params: readonly unknown[]): number {
  let n = 0;
  for (const v of params) n += valueSize(v);
  return n;
}

function valueSize(v: unknown): number {
  if (v === undefined || v === null) return 4;
  switch (typeof v) {
    case "string":
      return 4 + Buffer.byteLength(v);
    case "number":
    case "bigint":
    case "boolean":
      return 12;
    case "object":
      break;
    default:
      return 12;
  }
  if (v instanceof Date || v instanceof cassandra.types.LocalDate || v instanceof cassandra.types.Long) return 12;
  if (v instanceof cassandra.types.Uuid) return 20;
  if (v instanceof Buffer) return 4 + v.length;
  if (Array.isArray(v) || v instanceof Set) {
    let n = 4;
    for (const x of v) n += valueSize(x);
    return n;
  }
  if (v instanceof Map) {
    let n = 4;
    for (const [k, x] of v) n += valueSize(k) + valueSize(x);
    return n;
  }
  return 4 + JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? 0 : x)).length;
}
