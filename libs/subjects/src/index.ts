export { SERVICES, DATA_OPS, assertToken, leadToken, meshNames } from "./names";
export type { ServiceName, StoreName, DataOp, MeshNames } from "./names";
