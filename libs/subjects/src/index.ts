export { SERVICES, DATA_OPS, assertName, leadToken, meshNames } from "./names";
export type { ServiceName, StoreName, DataOp, MeshNames } from "./names";
export { NAME_PATTERN, NAME_MAX_LENGTH, NAME_RULE, nameProblem, isName } from "./name-rule";
export { jsApi, kvKeys, kvStream } from "./js-api";
export { ADMIN_USER, NATS_USERS, meshPermissions, servicePermissions } from "./permissions";
export type { NatsPermissions, NatsUser } from "./permissions";
export { passwordEnv, passwordProblem, renderAuthorization } from "./auth-config";
