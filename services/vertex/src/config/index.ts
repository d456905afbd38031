// The config chain as vertex serves it: config.get/patch/history/explain, patches checked by the services that own them.
export { configEndpoints } from "./config-endpoints";
export type { ConfigEndpointDeps } from "./config-endpoints";
export { remoteDefaults, remoteValidator } from "./remote-validators";
export { openServedChain } from "./served-chain";
export type { ServedChainOptions } from "./served-chain";
