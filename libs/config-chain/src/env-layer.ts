import { setPath } from "@machina/config";
import type { ConfigTree } from "./config-patch";
import type { EnvSetting } from "./file-config";

/**
 * The tree this process runs: env overrides laid over the patched tree (env is the highest
 * layer). An override applies only while its component exists; a patch cannot outvote it.
 */
export function withEnv(tree: ConfigTree, env: readonly EnvSetting[]): ConfigTree {
  if (env.length === 0) return tree;
  const out = structuredClone(tree);
  for (const s of env) {
    const [service, kind, name, ...leaf] = s.tokens;
    const component = out[service]?.[kind]?.[name];
    if (component === null || typeof component !== "object" || Array.isArray(component)) continue;
    setPath(component as Record<string, unknown>, leaf.join("."), structuredClone(s.value));
  }
  return out;
}
