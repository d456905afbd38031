// Entity types and what follows from them without a database: validation, table layout, value codecs, time windows.
export {
  TYPE_KIND,
  compileTypeDef,
  typeDefHash,
  canonicalTypeDef,
  isField,
  FIELD_TYPES,
  MERGE_POLICIES,
  RESERVED_COLUMNS,
} from "./type-def";
export type { TypeDef, FieldType, FieldMerge, MergePolicyName } from "./type-def";
export {
  dumpTableSpec,
  cleanTableSpec,
  entitiesTableSpec,
  manualTableSpec,
  dirtyMarksTableSpec,
  dirtyCursorTableSpec,
  cleanFailedTableSpec,
  driftTableSpec,
  schemaHistoryTableSpec,
  dumpTableOptions,
  createKeyspaceCql,
  createTableCql,
  addColumnCql,
  alterOptionsCql,
  cqlTypeOf,
  quoteId,
  dumpTableName,
  cleanTableName,
  ENTITY_BUCKETS,
  entitiesTableName,
  manualTableName,
  DIRTY_MARKS_TABLE,
  DIRTY_CURSOR_TABLE,
  LEGACY_DIRTY_TABLE,
  CLEAN_FAILED_TABLE,
  DRIFT_TABLE,
  SCHEMA_HISTORY_TABLE,
} from "./cql-schema";
export type { TableSpec, ColumnSpec } from "./cql-schema";
export { toCql, toPlain, keyValues, entityKeyJson, parseEntityKeyJson } from "./field-codec";
export type { CqlValue, ValueOrigin } from "./field-codec";
export { dayOf, daysBack, localDateOf, windowStartOf, DAY_MS } from "./time-windows";
