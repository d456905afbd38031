export { canonicalJson, canonicalHash } from "./canonical-json";
export { normalizeOps, patchHash, rootHash } from "./config-patch";
export type { ConfigTree, ChainOp, ChainPatch } from "./config-patch";
export { applyOps } from "./apply-ops";
export { parseKey, toPointer, valueAt } from "./key-path";
export { loadFileConfig, kindFolders } from "./file-config";
export type { FileConfig, EnvSetting } from "./file-config";
export { withEnv } from "./env-layer";
export { KindRegistry } from "./kind-registry";
export type {
  KindValidator,
  DeclaredKind,
  UnknownKindPolicy,
  ServiceValidator,
  ServiceDefaults,
} from "./kind-registry";
export { ChainStore } from "./chain-store";
export type { StoredHead, ChainStoreOptions, HeadWatch } from "./chain-store";
export { explainKey, explainKeyWithOwner } from "./explain";
export type { ConfigLayer, Explanation, ExplainInput } from "./explain";
export { ConfigChain } from "./config-chain";
export type { ChainState, PatchRequest, ConfigChainOptions } from "./config-chain";
export { ChainWatch } from "./chain-watch";
export { followChain } from "./follow-chain";
export type { ChainFollower, FollowOptions } from "./follow-chain";
