export { DataLayer } from "./data-layer";
export type { DataLayerOptions } from "./data-layer";
export {
  compileTypeDef,
  typeDefHash,
  canonicalTypeDef,
  FIELD_TYPES,
  MERGE_POLICIES,
  RESERVED_COLUMNS,
  isField,
} from "./type-def";
export type { TypeDef, FieldType, FieldMerge, MergePolicyName } from "./type-def";
export {
  dumpTableSpec,
  cleanTableSpec,
  dirtyTableSpec,
  schemaHistoryTableSpec,
  createKeyspaceCql,
  createTableCql,
  cqlTypeOf,
  dumpTableName,
  cleanTableName,
  DIRTY_TABLE,
  SCHEMA_HISTORY_TABLE,
} from "./cql-schema";
export type { TableSpec, ColumnSpec } from "./cql-schema";
export { ensureSchema } from "./schema-registry";
export type { EnsureSchemaResult, SchemaChange } from "./schema-registry";
export { writeDump } from "./dump-store";
export type { DumpRow, WriteDumpResult } from "./dump-store";
export { mergeRows } from "./merge";
export type { MergeRow, MergeResult } from "./merge";
export { runClean } from "./clean-job";
export type { RunCleanOptions, RunCleanResult, CleanedEntity, CleanFailure } from "./clean-job";
export { createRecords, readRecords, readOneRecord, countRecords, updateRecord, deleteRecords, MANUAL_SOURCE } from "./crud";
export type { ReadOptions, DeleteResult } from "./crud";
export { DIRTY_SHARDS, dirtyShardOf } from "./dirty-marks";
export { resolveType } from "./data-context";
export type { DataContext } from "./data-context";
export type { PlainRow } from "./row-format";
export type { CqlClient } from "./cql-exec";
export { toCql, toPlain, keyValues, entityKeyJson, parseEntityKeyJson } from "./field-codec";
export type { CqlValue, ValueOrigin } from "./field-codec";
export { dayOf, daysBack, windowStartOf, DAY_MS } from "./time-windows";
export { dataService, parseReplication, storeOf } from "./data-service";
export type { DataConfig } from "./data-service";
