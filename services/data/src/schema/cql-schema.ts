import type { FieldType, TypeDef } from "./type-def";

/** Name of the shared table of entity windows waiting for the clean job, by time slot. */
export const DIRTY_MARKS_TABLE = "dirty_marks";

/** Name of the table holding, per type and shard, the first slot the clean job has not closed. */
export const DIRTY_CURSOR_TABLE = "dirty_cursor";

/** Name of the table of dirty marks before slots; drained by the clean job when it exists. */
export const LEGACY_DIRTY_TABLE = "dirty";

/** Name of the table of entity windows the clean job gave up on, with their last error. */
export const CLEAN_FAILED_TABLE = "clean_failed";

/** Name of the shared table of fields records carry that their type does not declare. */
export const DRIFT_TABLE = "drift";

/** Name of the table recording every applied type version. */
export const SCHEMA_HISTORY_TABLE = "schema_history";

/** One column of a table layout. */
export interface ColumnSpec {
  readonly name: string;
  /** CQL type as `system_schema.columns` spells it, e.g. `map<text, text>`. */
  readonly cqlType: string;
  readonly kind: "partition_key" | "clustering" | "regular";
  /** Clustering order, for clustering columns. */
  readonly order?: "ASC" | "DESC";
}

/** A table layout: columns in primary-key order, then regular columns, plus `WITH` options. */
export interface TableSpec {
  readonly name: string;
  readonly columns: readonly ColumnSpec[];
  /** `WITH` options other than clustering order, e.g. `default_time_to_live = 60`. */
  readonly options: readonly string[];
}

const CQL_TYPES: Record<FieldType, string> = {
  text: "text",
  int: "int",
  bigint: "bigint",
  double: "double",
  boolean: "boolean",
  timestamp: "timestamp",
  // JSON is kept as its text so any shape fits and Scylla and Cassandra store it alike.
  json: "text",
};

/** CQL column type of a declared field type. */
export function cqlTypeOf(type: FieldType): string {
  return CQL_TYPES[type];
}

/** Double-quotes an identifier; field names are lowercase, so quoting only protects against reserved words. */
export function quoteId(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Table name of a type's raw rows. */
export function dumpTableName(def: Pick<TypeDef, "name">): string {
  return `dump_${def.name}`;
}

/** Table name of a type's merged rows. */
export function cleanTableName(def: Pick<TypeDef, "name">): string {
  return `clean_${def.name}`;
}

/** Table name of a type's entity index. */
export function entitiesTableName(def: Pick<TypeDef, "name">): string {
  return `entity_index_${def.name}`;
}

/**
 * Partitions of a type's entity index, fixed forever: an entity is only looked for in the bucket
 * its key hashes to. Entities of one stored batch then land in a few partitions (one mutation
 * each) where one partition per entity cost Cassandra a mutation per entity, as much as its dump
 * row (0.6 s of 1.5 s of its CPU per 20,000 first sights). A bucket holds 1/64 of the entities:
 * about 3 MB at a million.
 */
export const ENTITY_BUCKETS = 64;

/**
 * Layout of `entity_index_<type>`: one row per entity in the bucket its key hashes to, holding
 * the UTC days that have dump rows (each day expiring with the dump) and clean rows. Listing
 * pages through it; reads and counts walk only the days it names.
 */
export function entitiesTableSpec(def: TypeDef): TableSpec {
  return {
    name: entitiesTableName(def),
    columns: [
      col("bucket", "int", "partition_key"),
      ...def.key.map((f) => col(f, cqlTypeOf(def.fields[f]), "clustering")),
      col("dump_days", "set<date>", "regular"),
      col("clean_days", "set<date>", "regular"),
    ],
    options: [],
  };
}

/** Table name of a type's manual overrides. */
export function manualTableName(def: Pick<TypeDef, "name">): string {
  return `manual_${def.name}`;
}

/**
 * Layout of `manual_<type>`: one partition per entity holding the field values an operator set
 * through `data.update.clean` (field → JSON of the value), which every later merge applies over
 * what the sources say until they are cleared.
 */
export function manualTableSpec(def: TypeDef): TableSpec {
  return {
    name: manualTableName(def),
    columns: [
      ...def.key.map((f) => col(f, cqlTypeOf(def.fields[f]), "partition_key")),
      col("overrides", "map<text, text>", "regular"),
      col("updated_at", "timestamp", "regular"),
    ],
    options: [],
  };
}

/**
 * Layout of `dump_<type>`: one row per raw record, partitioned by entity and UTC day, newest
 * first; `seq` (the record's position in its answer) keeps several records of one entity in one
 * answer apart. `legacy` is the layout before `seq`, which tables made then keep.
 */
export function dumpTableSpec(def: TypeDef, layout: { legacy?: boolean } = {}): TableSpec {
  return {
    name: dumpTableName(def),
    columns: [
      ...def.key.map((f) => col(f, cqlTypeOf(def.fields[f]), "partition_key")),
      col("day", "date", "partition_key"),
      col("fetched_at", "timestamp", "clustering", "DESC"),
      col("source", "text", "clustering", "ASC"),
      col("query", "text", "clustering", "ASC"),
      ...(layout.legacy === true ? [] : [col("seq", "int", "clustering", "ASC")]),
      col("task_id", "text", "regular"),
      ...valueFields(def).map((f) => col(f, cqlTypeOf(def.fields[f]), "regular")),
    ],
    options: dumpTableOptions(def),
  };
}

/** `WITH` options of a dump table that follow from the definition (TTL and time-window compaction). */
export function dumpTableOptions(def: TypeDef): string[] {
  return [`default_time_to_live = ${def.dumpTtlSeconds}`, `compaction = ${twcsOptions(def.dumpTtlSeconds)}`];
}

/** Layout of `clean_<type>`: one merged row per entity and window, partitioned by entity and UTC day. */
export function cleanTableSpec(def: TypeDef): TableSpec {
  return {
    name: cleanTableName(def),
    columns: [
      ...def.key.map((f) => col(f, cqlTypeOf(def.fields[f]), "partition_key")),
      col("bucket", "date", "partition_key"),
      col("window_start", "timestamp", "clustering", "DESC"),
      ...valueFields(def).map((f) => col(f, cqlTypeOf(def.fields[f]), "regular")),
      col("merged_at", "timestamp", "regular"),
      col("sources", "int", "regular"),
      col("provenance", "map<text, text>", "regular"),
    ],
    options: [],
  };
}

/**
 * Layout of the shared `dirty_marks` table: entity windows the clean job still has to merge, in
 * partitions of (type, shard, writer's time slot). Each write is its own row (`id`), and a slot is
 * dropped whole once closed and merged, so marks are never deleted one by one: no row tombstones
 * pile up in a partition the job keeps reading.
 */
export function dirtyMarksTableSpec(): TableSpec {
  return {
    name: DIRTY_MARKS_TABLE,
    columns: [
      col("type", "text", "partition_key"),
      col("shard", "int", "partition_key"),
      col("slot", "int", "partition_key"),
      col("key", "text", "clustering", "ASC"),
      col("window_start", "timestamp", "clustering", "ASC"),
      col("id", "uuid", "clustering", "ASC"),
      col("manual", "boolean", "regular"),
    ],
    options: [],
  };
}

/** Layout of `dirty_cursor`: per (type, shard), the first slot not yet closed. */
export function dirtyCursorTableSpec(): TableSpec {
  return {
    name: DIRTY_CURSOR_TABLE,
    columns: [
      col("type", "text", "partition_key"),
      col("shard", "int", "partition_key"),
      col("slot", "int", "regular"),
    ],
    options: [],
  };
}

/** Layout of `clean_failed`: per type, the entity windows parked after repeated merge failures. */
export function cleanFailedTableSpec(): TableSpec {
  return {
    name: CLEAN_FAILED_TABLE,
    columns: [
      col("type", "text", "partition_key"),
      col("key", "text", "clustering", "ASC"),
      col("window_start", "timestamp", "clustering", "ASC"),
      col("code", "text", "regular"),
      col("error", "text", "regular"),
      col("attempts", "int", "regular"),
      col("failed_at", "timestamp", "regular"),
    ],
    options: [],
  };
}

/** Layout of the shared `drift` table: per type, each undeclared field seen, when, and its JSON type. */
export function driftTableSpec(): TableSpec {
  return {
    name: DRIFT_TABLE,
    columns: [
      col("type", "text", "partition_key"),
      col("field", "text", "clustering", "ASC"),
      col("first_seen", "timestamp", "regular"),
      col("last_seen", "timestamp", "regular"),
      col("example_type", "text", "regular"),
    ],
    options: [],
  };
}

/** Layout of `schema_history`: one row per applied version of each type, newest first. */
export function schemaHistoryTableSpec(): TableSpec {
  return {
    name: SCHEMA_HISTORY_TABLE,
    columns: [
      col("type", "text", "partition_key"),
      col("version", "int", "clustering", "DESC"),
      col("hash", "text", "regular"),
      col("definition", "text", "regular"),
      col("origin", "text", "regular"),
      col("cql", "text", "regular"),
      col("applied_at", "timestamp", "regular"),
    ],
    options: [],
  };
}

/** `CREATE KEYSPACE IF NOT EXISTS` with NetworkTopologyStrategy, the only strategy both Scylla and Cassandra accept everywhere. */
export function createKeyspaceCql(keyspace: string, replication: Readonly<Record<string, number>>): string {
  const dcs = Object.entries(replication)
    .map(([dc, rf]) => `'${dc.replace(/'/g, "''")}': ${rf}`)
    .join(", ");
  return `CREATE KEYSPACE IF NOT EXISTS ${keyspace} WITH replication = {'class': 'NetworkTopologyStrategy', ${dcs}}`;
}

/** `CREATE TABLE IF NOT EXISTS` for a layout. */
export function createTableCql(keyspace: string, spec: TableSpec): string {
  const partition = spec.columns.filter((c) => c.kind === "partition_key").map((c) => quoteId(c.name));
  const clustering = spec.columns.filter((c) => c.kind === "clustering");
  const pk = [`(${partition.join(", ")})`, ...clustering.map((c) => quoteId(c.name))].join(", ");
  const lines = spec.columns.map((c) => `  ${quoteId(c.name)} ${c.cqlType}`);
  const options = [
    ...(clustering.length > 0
      ? [`CLUSTERING ORDER BY (${clustering.map((c) => `${quoteId(c.name)} ${c.order ?? "ASC"}`).join(", ")})`]
      : []),
    ...spec.options,
  ];
  return (
    `CREATE TABLE IF NOT EXISTS ${keyspace}.${spec.name} (\n${lines.join(",\n")},\n  PRIMARY KEY (${pk})\n)` +
    (options.length > 0 ? ` WITH ${options.join("\n  AND ")}` : "")
  );
}

/** `ALTER TABLE … ADD` for one new regular column. */
export function addColumnCql(keyspace: string, table: string, column: ColumnSpec): string {
  return `ALTER TABLE ${keyspace}.${table} ADD ${quoteId(column.name)} ${column.cqlType}`;
}

/** `ALTER TABLE … WITH` for changed table options. */
export function alterOptionsCql(keyspace: string, table: string, options: readonly string[]): string {
  return `ALTER TABLE ${keyspace}.${table} WITH ${options.join(" AND ")}`;
}

// About 30 compaction windows over the TTL keeps each SSTable droppable as a whole once it expires.
function twcsOptions(ttlSeconds: number): string {
  const hours = Math.max(1, Math.round(ttlSeconds / 3600 / 30));
  const [unit, size] = hours % 24 === 0 ? ["DAYS", hours / 24] : ["HOURS", hours];
  return (
    `{'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': '${unit}', ` +
    `'compaction_window_size': '${size}'}`
  );
}

function valueFields(def: TypeDef): string[] {
  return Object.keys(def.fields).filter((f) => !def.key.includes(f));
}

function col(name: string, cqlType: string, kind: ColumnSpec["kind"], order?: "ASC" | "DESC"): ColumnSpec {
  return order === undefined ? { name, cqlType, kind } : { name, cqlType, kind, order };
}
