// Talking to Cassandra: the driver wrapper, the keyspace and its tables, dump writes, dirty marks and row shapes.
export { execute, executeUnloggedBatch, pages, toDataError } from "./cql-exec";
export type { CqlClient, CqlRow, CqlStatement } from "./cql-exec";
export { chunk, mapLimit } from "./concurrency";
export { resolveType, tableRef } from "./data-context";
export type { DataContext } from "./data-context";
export { ensureSchema, readSchemaHistory } from "./schema-registry";
export type { EnsureSchemaResult, SchemaChange, SchemaVersionEntry } from "./schema-registry";
export { DIRTY_SHARDS, dirtyShardOf, readDirty, clearDirty } from "./dirty-marks";
export type { DirtyMark } from "./dirty-marks";
export { prepareDumpRows, storeDumps, writeDump } from "./dump-store";
export type { DumpRow, PreparedDump, RefusedRow, WriteDumpResult } from "./dump-store";
export { entityDayWrites, entityDays, listKeys, writeEntityDays } from "./entities";
export type { EntityDay, EntityDayWrite, KeyPage } from "./entities";
export { readDrift } from "./drift";
export type { DriftField } from "./drift";
export { filterableMeta, rowToPlain, selectList, valueFieldsOf } from "./row-format";
export type { PlainRow } from "./row-format";
