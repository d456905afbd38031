export {
  LEDGER_SOURCES,
  checkRefreshTriggers,
  compileLedgers,
  ledgerKind,
  ledgerOf,
  ledgerPage,
  noteRejected,
} from "./ledger-table";
export type { LedgerFrom, LedgerSource, LedgerState, LedgerTable } from "./ledger-table";
export { LeadStore, compareIds } from "./lead-store";
export type { LeadPage } from "./lead-store";
export { LEAD_FIELD_TYPES, fitLead, parseFieldType } from "./lead-shape";
export type { FittedLead, LeadField, LeadFieldType, LeadShape } from "./lead-shape";
export { KvLedgers, leadKey } from "./kv-ledgers";
export type { EditResult } from "./kv-ledgers";
export { refreshSelfLedger } from "./self-refresh";
export type { RefreshResult } from "./self-refresh";
