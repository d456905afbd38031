import { TYPE_KIND } from "./schema";

export {
  DataLayer,
  createRecords,
  readRecords,
  readOneRecord,
  countRecords,
  updateRecord,
  deleteRecords,
  MANUAL_SOURCE,
} from "./crud";
export type { DataLayerOptions, ReadOptions, DeleteResult } from "./crud";
export {
  TYPE_KIND,
  compileTypeDef,
  typeDefHash,
  canonicalTypeDef,
  FIELD_TYPES,
  MERGE_POLICIES,
  RESERVED_COLUMNS,
  isField,
  dumpTableSpec,
  cleanTableSpec,
  dirtyMarksTableSpec,
  dirtyCursorTableSpec,
  cleanFailedTableSpec,
  schemaHistoryTableSpec,
  createKeyspaceCql,
  createTableCql,
  cqlTypeOf,
  dumpTableName,
  cleanTableName,
  entitiesTableName,
  ENTITY_BUCKETS,
  DIRTY_MARKS_TABLE,
  DIRTY_CURSOR_TABLE,
  CLEAN_FAILED_TABLE,
  SCHEMA_HISTORY_TABLE,
  toCql,
  toPlain,
  keyValues,
  entityKeyJson,
  parseEntityKeyJson,
  dayOf,
  daysBack,
  windowStartOf,
  DAY_MS,
} from "./schema";
export type {
  TypeDef,
  FieldType,
  FieldMerge,
  MergePolicyName,
  TableSpec,
  ColumnSpec,
  CqlValue,
  ValueOrigin,
} from "./schema";
export {
  ensureSchema,
  writeDump,
  DIRTY_SHARDS,
  DIRTY_SLOT_MS,
  DIRTY_CLOSE_AFTER_MS,
  dirtyShardOf,
  entityBucketOf,
  resolveType,
  CLEAN_ORDER,
  DUMP_ORDER,
  WriteQueue,
  RecordedDays,
  mergePending,
  pendingEntity,
  pendingView,
} from "./store";
export type {
  EnsureSchemaResult,
  SchemaChange,
  DumpRow,
  WriteDumpResult,
  DataContext,
  PlainRow,
  CqlClient,
  PendingView,
  QueuedWrite,
  RowOrder,
  RowView,
  WriteQueueOptions,
  WriteQueueStats,
  RecordedDaysOptions,
} from "./store";
export { CleanLeases, mergeRows, runClean } from "./clean";
export type {
  CleanUnit,
  MergeRow,
  MergeResult,
  RunCleanOptions,
  RunCleanResult,
  CleanedEntity,
  CleanFailure,
  FailedPage,
  FailedWindow,
} from "./clean";
export { dataService, parseReplication, storeOf } from "./data-service";
export { cassandraSslOptions } from "./cassandra-tls";
export type { CassandraTls } from "./cassandra-tls";
export type { DataConfig } from "./data-service";
export { CursorAdvance, cursorMarkOf } from "./cursor-advance";
export type { CursorMark, CursorAdvanceOptions } from "./cursor-advance";

/** Every component kind the data service reads, for the reference docs. */
export const componentKinds = [TYPE_KIND] as const;
