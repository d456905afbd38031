import { MachinaError } from "@machina/wire";
import type { TypeDef } from "../schema";
import type { CqlClient } from "./cql-exec";

/** Everything the stores need: a connected client, the keyspace and the registered types. */
export interface DataContext {
  readonly client: CqlClient;
  /** Keyspace every table lives in; statements name it explicitly. */
  readonly keyspace: string;
  readonly types: ReadonlyMap<string, TypeDef>;
  /** Most statements or batches in flight per call. */
  readonly concurrency: number;
  /** How many UTC days back clean reads walk. */
  readonly lookbackDays: number;
  /** Entity days this replica has recorded in the entity index (see entities.ts); bounded there. */
  readonly recordedDays: Map<string, number>;
  /** By type: since when (epoch ms) the entity index names every day with rows; 0 for always. */
  readonly indexSince: ReadonlyMap<string, number>;
  /** Undeclared fields this replica recorded in the drift table, with when (see drift.ts). */
  readonly driftWritten: Map<string, number>;
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
