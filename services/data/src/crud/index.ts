// The data layer's API: CRUD over both stores, single and bulk, and the DataLayer that opens a keyspace and serves them.
export { createRecords, updateRecord, deleteRecords, MANUAL_SOURCE } from "./write";
export type { DeleteResult } from "./write";
export { readRecords, readOneRecord, countRecords } from "./read";
export type { ReadOptions } from "./read";
export { readRecordsBulk, readOneRecordsBulk, countRecordsBulk, updateRecordsBulk, deleteRecordsBulk } from "./bulk";
export type { BulkRecords, BulkCount, UpdateItem } from "./bulk";
export { MAX_BULK_ITEMS, chooseForm } from "./bulk-items";
export type { RequestForm, SingleFields, BulkField } from "./bulk-items";
export { MAX_SERIES_LIMIT, SERIES_FIELD_TYPES, numericFields, readSeries, seriesBytes } from "./series";
export type { SeriesOptions, SeriesPage } from "./series";
export { DataLayer } from "./data-layer";
export type { DataLayerOptions } from "./data-layer";
