// Talking to Cassandra: the driver wrapper, the keyspace and its tables, dump writes, dirty marks and row shapes.
export { execute, executeUnloggedBatch, pages, toDataError } from "./cql-exec";
export type { CqlClient, CqlRow, CqlStatement } from "./cql-exec";
export { chunk, mapLimit } from "./concurrency";
export { cachedQuery } from "./statement-cache";
export { newCleanMemory, resolveType, tableRef } from "./data-context";
export type { CleanMemory, DataContext } from "./data-context";
export { checkSchema, ensureSchema, readSchemaHistory } from "./schema-registry";
export type { EnsureSchemaResult, SchemaChange, SchemaVersionEntry } from "./schema-registry";
export {
  DIRTY_CLOSE_AFTER_MS,
  DIRTY_SHARDS,
  DIRTY_SLOT_MS,
  dirtyShardOf,
  dirtySlotOf,
  dropSlot,
  markDirty,
  readCursor,
  readSlot,
  slotClosed,
  writeCursor,
} from "./dirty-marks";
export type { DirtyMark, StoredMark } from "./dirty-marks";
export { prepareDumpRows, storeDumps, writeDump } from "./dump-store";
export type { DumpRow, PreparedDump, RefusedRow, WriteDumpResult } from "./dump-store";
export { entityBucketOf, entityDayWrites, entityDays, listKeys, writeEntityDays } from "./entities";
export type { EntityDay, EntityDayWrite, KeyPage } from "./entities";
export { readDrift } from "./drift";
export { RecordedDays } from "./recorded-days";
export type { RecordedDaysOptions } from "./recorded-days";
export { pageOptions } from "./paging";
export { clearOverrides, readOverrides, writeOverrides } from "./manual-overrides";
export type { Overrides } from "./manual-overrides";
export type { DriftField } from "./drift";
export { dumpHasSeq, filterableMeta, rowToPlain, selectList, valueFieldsOf } from "./row-format";
export type { PlainRow } from "./row-format";
export { WriteQueue, pendingEntity } from "./write-queue";
export type { PendingView, QueuedWrite, WriteQueueOptions, WriteQueueStats } from "./write-queue";
export { CLEAN_ORDER, DUMP_ORDER, mergePending, pendingView } from "./pending-rows";
export type { RowOrder, RowView } from "./pending-rows";
