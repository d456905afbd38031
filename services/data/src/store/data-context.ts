import { MachinaError } from "@machina/wire";
import type { TypeDef } from "../schema";
import type { CqlClient } from "./cql-exec";
import type { WriteQueue } from "./write-queue";
import type { RecordedDays } from "./recorded-days";

/** Everything the stores need: a connected client, the keyspace and the registered types. */
export interface DataContext {
  readonly client: CqlClient;
  /** The replica's operation queue: every row write goes through it, and reads merge what it holds. */
  readonly queue: WriteQueue;
  /** Keyspace every table lives in; statements name it explicitly. */
  readonly keyspace: string;
  readonly types: ReadonlyMap<string, TypeDef>;
  /** Most statements or batches in flight per call. */
  readonly concurrency: number;
  /** How many UTC days back clean reads walk. */
  readonly lookbackDays: number;
  /** Entity days this replica has recorded in the entity index (see entities.ts). */
  readonly recordedDays: RecordedDays;
  /** By type: since when (epoch ms) the entity index names every day with rows; 0 for always. */
  readonly indexSince: ReadonlyMap<string, number>;
  /** Types whose dump table predates `seq` (see dumpTableSpec); their rows are written without it. */
  readonly legacyDump: ReadonlySet<string>;
  /** Undeclared fields this replica recorded in the drift table, with when (see drift.ts). */
  readonly driftWritten: Map<string, number>;
  /** The replica's clock (epoch ms): dirty-mark slots and clean runs read it. */
  readonly clock: () => number;
  /** (type, shard) units whose dirty cursor this replica knows exists (see dirty-marks.ts). */
  readonly cursorsKnown: Set<string>;
  /** Whether the keyspace still has the dirty table of before slots, to drain. */
  readonly legacyDirty: boolean;
  /** By type: whether it had manual overrides when this replica last looked, and when (see manual-overrides.ts). */
  readonly manualSeen: Map<string, { any: boolean; at: number }>;
  /** What this replica's clean job remembers between runs. */
  readonly clean: CleanMemory;
}

/** State a replica's clean job keeps between runs; losing it (a restart, a lease moving) only costs repeated merges. */
export interface CleanMemory {
  /** By unit (type, shard), then slot: ids of the marks already merged in slots not yet closed. */
  readonly merged: Map<string, Map<number, Set<string>>>;
  /** Failed merges of an entity window (type, key, window start) since it last merged. */
  readonly attempts: Map<string, number>;
  /** Units whose partition of the legacy dirty table was found empty. */
  readonly legacyDrained: Set<string>;
}

/** Empty clean-job memory. */
export function newCleanMemory(): CleanMemory {
  return { merged: new Map(), attempts: new Map(), legacyDrained: new Set() };
}

/** The registered type called `name`; NOT_FOUND naming the known types otherwise. */
export function resolveType(ctx: Pick<DataContext, "types">, name: string): TypeDef {
  const def = ctx.types.get(name);
  if (def === undefined) {
    const known = [...ctx.types.keys()].sort();
    throw new MachinaError(
      "NOT_FOUND",
      `unknown type "${name}" (known: ${known.length > 0 ? known.join(", ") : "none registered"})`,
      { details: { type: name, known } },
    );
  }
  return def;
}

/** Fully qualified table name. */
export function tableRef(ctx: Pick<DataContext, "keyspace">, table: string): string {
  return `${ctx.keyspace}.${table}`;
}
