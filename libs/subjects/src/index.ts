export { SERVICES, DATA_OPS, assertToken, meshNames } from "./names";
export type { ServiceName, StoreName, DataOp, MeshNames } from "./names";
