import { nameProblem } from "@machina/subjects";
import { MachinaError } from "@machina/wire";
import {
  SCHEMA_HISTORY_TABLE,
  addColumnCql,
  alterOptionsCql,
  canonicalTypeDef,
  cleanTableSpec,
  entitiesTableName,
  entitiesTableSpec,
  manualTableSpec,
  createKeyspaceCql,
  createTableCql,
  LEGACY_DIRTY_TABLE,
  cleanFailedTableSpec,
  dirtyCursorTableSpec,
  dirtyMarksTableSpec,
  driftTableSpec,
  dumpTableOptions,
  dumpTableName,
  dumpTableSpec,
  schemaHistoryTableSpec,
  typeDefHash,
  type FieldType,
  type TableSpec,
  type TypeDef,
} from "../schema";
import { execute, executeDdl, pages, type CqlClient } from "./cql-exec";

/** One type whose schema moved to a new recorded version. */
export interface SchemaChange {
  readonly type: string;
  readonly version: number;
  /** DDL run for this version (empty when only merge policies or clean_window changed). */
  readonly statements: readonly string[];
}

/** What {@link ensureSchema} did. */
export interface EnsureSchemaResult {
  readonly applied: SchemaChange[];
  /** Types already at their recorded version with matching tables. */
  readonly unchanged: string[];
  /** By type: since when (epoch ms) its entity index names every day with rows (0: always). */
  readonly indexSince: ReadonlyMap<string, number>;
  /** Types whose dump table predates `seq`: records of one entity in one answer share a row there. */
  readonly legacyDump: ReadonlySet<string>;
  /** Whether the keyspace still has the dirty table of before slots, whose marks the clean job drains. */
  readonly legacyDirty: boolean;
}

interface ExistingColumn {
  readonly kind: string;
  readonly position: number;
  readonly type: string;
  readonly order: string;
}

interface ExistingSchema {
  readonly columns: Map<string, Map<string, ExistingColumn>>;
  readonly ttl: Map<string, number>;
}

interface HistoryEntry {
  readonly version: number;
  readonly hash: string;
  readonly definition: { key: string[]; fields: Record<string, FieldType> } | undefined;
}

interface Plan {
  readonly def: TypeDef;
  readonly hash: string;
  readonly version: number;
  readonly statements: string[];
  readonly record: boolean;
}

/** Creates the keyspace and tables, or extends them additively; refuses breaking changes with CONFLICT and records each applied version. */
export async function ensureSchema(
  client: CqlClient,
  keyspace: string,
  replication: Readonly<Record<string, number>>,
  types: readonly TypeDef[],
): Promise<EnsureSchemaResult> {
  checkKeyspace(keyspace, replication);
  const names = new Set<string>();
  for (const def of types) {
    if (names.has(def.name)) {
      throw new MachinaError("BAD_REQUEST", `${def.origin}: type "${def.name}" is declared twice`, {
        details: { type: def.name, origin: def.origin },
      });
    }
    names.add(def.name);
  }

  const ks = await execute(
    client,
    "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?",
    [keyspace],
    "reading keyspaces",
  );
  if (ks.rows.length === 0) {
    await executeDdl(client, createKeyspaceCql(keyspace, replication), `creating keyspace ${keyspace}`);
  }
  let existing = await readExisting(client, keyspace);
  const legacyDirty = existing.columns.has(LEGACY_DIRTY_TABLE);
  const shared = [
    schemaHistoryTableSpec(),
    dirtyMarksTableSpec(),
    dirtyCursorTableSpec(),
    cleanFailedTableSpec(),
    driftTableSpec(),
  ];
  for (const spec of shared) {
    if (!existing.columns.has(spec.name)) {
      await executeDdl(client, createTableCql(keyspace, spec), `creating table ${keyspace}.${spec.name}`);
    }
  }
  existing = await readExisting(client, keyspace);

  // Plan every type before touching any, so one refused change leaves all tables as they were.
  const { plans, legacyDump } = await planOrRefuse(client, keyspace, existing, types);
  const applied: SchemaChange[] = [];
  const unchanged: string[] = [];
  for (const plan of plans) {
    if (!plan.record) {
      unchanged.push(plan.def.name);
      continue;
    }
    for (const cql of plan.statements) await executeDdl(client, cql, `applying schema of type ${plan.def.name}`);
    // IF NOT EXISTS: when two replicas race, the first record of a version wins and the other is a no-op.
    await execute(
      client,
      `INSERT INTO ${keyspace}.${SCHEMA_HISTORY_TABLE} (type, version, hash, definition, origin, cql, applied_at) ` +
        `VALUES (?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS`,
      [
        plan.def.name,
        plan.version,
        plan.hash,
        canonicalTypeDef(plan.def),
        plan.def.origin,
        plan.statements.join(";\n"),
        new Date(),
      ],
      `recording schema version of type ${plan.def.name}`,
    );
    applied.push({ type: plan.def.name, version: plan.version, statements: plan.statements });
  }
  const indexSince = new Map<string, number>();
  for (const def of types) indexSince.set(def.name, await entityIndexSince(client, keyspace, def.name));
  return { applied, unchanged, indexSince, legacyDump, legacyDirty };
}

/**
 * Checks, without changing anything, that `types` could be registered over what the keyspace
 * holds: throws CONFLICT naming every breaking change (a changed key, a removed field, a changed
 * field type) as {@link ensureSchema} would refuse it. What a live config head is checked with.
 */
export async function checkSchema(client: CqlClient, keyspace: string, types: readonly TypeDef[]): Promise<void> {
  await planOrRefuse(client, keyspace, await readExisting(client, keyspace), types);
}

// The DDL and history records each type needs over `existing`; CONFLICT for breaking changes.
async function planOrRefuse(
  client: CqlClient,
  keyspace: string,
  existing: ExistingSchema,
  types: readonly TypeDef[],
): Promise<{ plans: Plan[]; legacyDump: Set<string> }> {
  const plans: Plan[] = [];
  const conflicts: string[] = [];
  const refused: { type: string; origin: string; problems: string[] }[] = [];
  const legacyDump = new Set<string>();
  // Before the shared tables exist (a check against a new keyspace) no type has a history.
  const history = existing.columns.has(SCHEMA_HISTORY_TABLE);
  for (const def of types) {
    const prev = history ? await readLatestHistory(client, keyspace, def.name) : undefined;
    const problems = diffDefinition(def, prev);
    const statements: string[] = [];
    const dumpCols = existing.columns.get(dumpTableName(def));
    // A dump table made before `seq` keeps its layout (its key cannot change in place) rather than refusing to boot.
    const legacy = dumpCols !== undefined && !dumpCols.has("seq") && dumpCols.has("fetched_at");
    if (legacy) legacyDump.add(def.name);
    for (const spec of [
      dumpTableSpec(def, { legacy }),
      cleanTableSpec(def),
      entitiesTableSpec(def),
      manualTableSpec(def),
    ]) {
      const cols = existing.columns.get(spec.name);
      if (cols === undefined) {
        statements.push(createTableCql(keyspace, spec));
        continue;
      }
      const tableProblems = diffTable(spec, cols);
      // Physical mismatches usually restate a field-level one; show them only when they add information.
      if (problems.length === 0) problems.push(...tableProblems);
      statements.push(...(tableProblems.length === 0 ? addedColumns(keyspace, spec, cols) : []));
    }
    const dumpTable = dumpTableSpec(def).name;
    const ttl = existing.ttl.get(dumpTable);
    if (ttl !== undefined && ttl !== def.dumpTtlSeconds) {
      statements.push(alterOptionsCql(keyspace, dumpTable, dumpTableOptions(def)));
    }
    if (problems.length > 0) {
      conflicts.push(`type ${def.name} (${def.origin}): ${problems.join("; ")}`);
      refused.push({ type: def.name, origin: def.origin, problems });
      continue;
    }
    const hash = typeDefHash(def);
    const record = statements.length > 0 || prev?.hash !== hash;
    plans.push({ def, hash, version: (prev?.version ?? 0) + (record ? 1 : 0), statements, record });
  }
  if (conflicts.length > 0) {
    throw new MachinaError(
      "CONFLICT",
      `breaking schema change refused: ${conflicts.join(" | ")}. Breaking changes need a new type name ` +
        `(for example <name>_v2); only new fields, merge policies, dump_ttl and clean_window may change in place`,
      { details: { keyspace, conflicts, types: refused }, retryable: false },
    );
  }
  return { plans, legacyDump };
}

/**
 * Since when (epoch ms) the entity index of a type names every day with rows: 0 when it was made
 * with the type's dump table, else when it was added to a type that already had rows (those rows
 * are only found by walking every day until they have expired).
 */
async function entityIndexSince(client: CqlClient, keyspace: string, type: string): Promise<number> {
  const rs = await execute(
    client,
    `SELECT version, cql, applied_at FROM ${keyspace}.${SCHEMA_HISTORY_TABLE} WHERE type = ?`,
    [type],
    `reading schema history of type ${type}`,
  );
  const creates = (table: string) => (cql: string) => cql.includes(`CREATE TABLE IF NOT EXISTS ${keyspace}.${table} `);
  // Oldest version first: the one that made the index.
  const rows = [...rs.rows].sort((a, b) => (a.get("version") as number) - (b.get("version") as number));
  const made = rows.find((r) => creates(entitiesTableName({ name: type }))(String(r.get("cql") ?? "")));
  if (made === undefined) return Date.now();
  if (creates(`dump_${type}`)(String(made.get("cql") ?? ""))) return 0;
  return (made.get("applied_at") as Date).getTime();
}

/** One recorded version of a type's schema. */
export interface SchemaVersionEntry {
  readonly version: number;
  readonly hash: string;
  readonly appliedAt: number;
  readonly origin: string;
  readonly cql: string;
  /** The canonical definition as recorded; null when it does not parse. */
  readonly definition: Record<string, unknown> | null;
}

/** Every recorded version of a type's schema, newest first. */
export async function readSchemaHistory(
  client: CqlClient,
  keyspace: string,
  type: string,
): Promise<SchemaVersionEntry[]> {
  const rs = await execute(
    client,
    `SELECT version, hash, definition, origin, cql, applied_at FROM ${keyspace}.${SCHEMA_HISTORY_TABLE} WHERE type = ?`,
    [type],
    `reading schema history of type ${type}`,
  );
  return rs.rows.map((r) => {
    let definition: Record<string, unknown> | null = null;
    try {
      definition = JSON.parse(String(r.get("definition"))) as Record<string, unknown>;
    } catch {
      // An unreadable definition still leaves its version, hash and DDL to show.
    }
    return {
      version: r.get("version") as number,
      hash: r.get("hash") as string,
      appliedAt: (r.get("applied_at") as Date).getTime(),
      origin: (r.get("origin") as string | null) ?? "",
      cql: (r.get("cql") as string | null) ?? "",
      definition,
    };
  });
}

/** Throws BAD_REQUEST unless the keyspace name and replication map are usable. */
function checkKeyspace(keyspace: string, replication: Readonly<Record<string, number>>): void {
  // The keyspace is a name an operator chooses and a CQL identifier, like type names: one rule for both.
  const problem = nameProblem(keyspace);
  if (problem !== null) throw new MachinaError("BAD_REQUEST", `keyspace: ${problem}`, { details: { keyspace } });
  const entries = Object.entries(replication ?? {});
  if (entries.length === 0) {
    throw new MachinaError("BAD_REQUEST", `replication must name at least one datacenter, e.g. { datacenter1: 1 }`, {
      details: { keyspace },
    });
  }
  for (const [dc, rf] of entries) {
    if (dc === "" || !Number.isInteger(rf) || rf < 1) {
      throw new MachinaError("BAD_REQUEST", `replication.${dc}: ${String(rf)} is not a positive replication factor`, {
        details: { keyspace, datacenter: dc },
      });
    }
  }
}

async function readExisting(client: CqlClient, keyspace: string): Promise<ExistingSchema> {
  const columns = new Map<string, Map<string, ExistingColumn>>();
  const colsQuery =
    "SELECT table_name, column_name, kind, position, type, clustering_order FROM system_schema.columns WHERE keyspace_name = ?";
  for await (const page of pages(client, colsQuery, [keyspace], "reading table columns")) {
    for (const r of page) {
      const table = r.get("table_name") as string;
      const map = columns.get(table) ?? new Map<string, ExistingColumn>();
      map.set(r.get("column_name") as string, {
        kind: r.get("kind") as string,
        position: r.get("position") as number,
        type: r.get("type") as string,
        order: String(r.get("clustering_order") ?? "none").toUpperCase(),
      });
      columns.set(table, map);
    }
  }
  const ttl = new Map<string, number>();
  const ttlQuery = "SELECT table_name, default_time_to_live FROM system_schema.tables WHERE keyspace_name = ?";
  for await (const page of pages(client, ttlQuery, [keyspace], "reading table options")) {
    for (const r of page) ttl.set(r.get("table_name") as string, r.get("default_time_to_live") as number);
  }
  return { columns, ttl };
}

async function readLatestHistory(client: CqlClient, keyspace: string, type: string): Promise<HistoryEntry | undefined> {
  const rs = await execute(
    client,
    `SELECT version, hash, definition FROM ${keyspace}.${SCHEMA_HISTORY_TABLE} WHERE type = ? LIMIT 1`,
    [type],
    `reading schema history of type ${type}`,
  );
  const row = rs.first();
  if (row === null) return undefined;
  let definition: HistoryEntry["definition"];
  try {
    definition = JSON.parse(row.get("definition") as string) as HistoryEntry["definition"];
  } catch {
    // Unreadable history only loses the field-level diff; the physical diff still guards the tables.
    definition = undefined;
  }
  return { version: row.get("version") as number, hash: row.get("hash") as string, definition };
}

/** Breaking differences between the last recorded definition and the new one. */
function diffDefinition(def: TypeDef, prev: HistoryEntry | undefined): string[] {
  const old = prev?.definition;
  if (old === undefined) return [];
  const problems: string[] = [];
  if (JSON.stringify(old.key) !== JSON.stringify(def.key)) {
    problems.push(`key changed from [${old.key.join(", ")}] to [${def.key.join(", ")}]`);
  }
  for (const [field, type] of Object.entries(old.fields)) {
    const now = Object.hasOwn(def.fields, field) ? def.fields[field] : undefined;
    if (now === undefined) problems.push(`field "${field}" was removed`);
    else if (now !== type) problems.push(`field "${field}" changed type from ${type} to ${now}`);
  }
  return problems;
}

/** Breaking differences between a table in the database and its expected layout. */
function diffTable(spec: TableSpec, existing: Map<string, ExistingColumn>): string[] {
  const problems: string[] = [];
  const positions = new Map<string, number>();
  for (const kind of ["partition_key", "clustering"] as const) {
    spec.columns.filter((c) => c.kind === kind).forEach((c, i) => positions.set(c.name, i));
  }
  for (const c of spec.columns) {
    const ex = existing.get(c.name);
    if (ex === undefined) {
      if (c.kind !== "regular") problems.push(`${spec.name}: key column "${c.name}" is missing (the key changed)`);
      continue;
    }
    const pos = positions.get(c.name) ?? -1;
    if (ex.kind !== c.kind || (c.kind !== "regular" && ex.position !== pos)) {
      problems.push(
        `${spec.name}: column "${c.name}" is ${ex.kind} #${ex.position} in the database, ${c.kind} #${pos} in the definition (the key changed)`,
      );
    } else if (normalType(ex.type) !== normalType(c.cqlType)) {
      problems.push(
        `${spec.name}: column "${c.name}" is ${ex.type} in the database but ${c.cqlType} in the definition`,
      );
    } else if (c.kind === "clustering" && ex.order !== (c.order ?? "ASC")) {
      problems.push(`${spec.name}: column "${c.name}" is clustered ${ex.order} in the database`);
    }
  }
  const expected = new Set(spec.columns.map((c) => c.name));
  for (const [name, ex] of existing) {
    if (expected.has(name)) continue;
    problems.push(
      ex.kind === "regular"
        ? `${spec.name}: column "${name}" exists but is no longer declared (a removed field)`
        : `${spec.name}: key column "${name}" exists but is no longer in the key (the key changed)`,
    );
  }
  return problems;
}

function addedColumns(keyspace: string, spec: TableSpec, existing: Map<string, ExistingColumn>): string[] {
  return spec.columns
    .filter((c) => c.kind === "regular" && !existing.has(c.name))
    .map((c) => addColumnCql(keyspace, spec.name, c));
}

function normalType(t: string): string {
  return t.replace(/\s+/g, "").toLowerCase();
}
