export { SERVICES, DATA_OPS, assertName, leadToken, meshNames } from "./names";
export type { ServiceName, StoreName, DataOp, MeshNames } from "./names";
export { NAME_PATTERN, NAME_MAX_LENGTH, NAME_RULE, nameProblem, isName } from "./name-rule";
