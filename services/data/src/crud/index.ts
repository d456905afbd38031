// The data layer's API: CRUD over both stores and the DataLayer that opens a keyspace and serves them.
export {
  createRecords,
  readRecords,
  readOneRecord,
  countRecords,
  updateRecord,
  deleteRecords,
  MANUAL_SOURCE,
} from "./crud";
export type { ReadOptions, DeleteResult } from "./crud";
export { DataLayer } from "./data-layer";
export type { DataLayerOptions } from "./data-layer";
