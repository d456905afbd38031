import path from "node:path";
import { readLayer } from "@machina/config";
import { MachinaError } from "@machina/wire";
import type { ChainPatch, ConfigTree } from "./config-patch";
import type { FileConfig } from "./file-config";
import type { KindRegistry } from "./kind-registry";
import { overlaps, parseKey, toPointer, valueAt } from "./key-path";

/** The layers a component value can come from, highest precedence first. */
export type ConfigLayer = "env" | "patch" | "mode file" | "default file" | "schema default" | "unset";

/** Which layer gave a key its value. */
export interface Explanation {
  /** The key as a JSON pointer. */
  key: string;
  /** The value in force (env and schema defaults included); undefined when unset. */
  value: unknown;
  layer: ConfigLayer;
  /** `env NAME`, `patch <hash>`, `mode file <path>`, `default file <path>`, `schema default` or `unset`. */
  origin: string;
}

/** What explaining needs: the files, the chain up to its head, the trees it gives, the kinds. */
export interface ExplainInput {
  files: FileConfig;
  patches: readonly ChainPatch[];
  /** Files plus env: the tree this process runs. */
  effective: ConfigTree;
  registry: KindRegistry;
}

/**
 * Says which layer gave `key` (a JSON pointer or dotted key, at least `<service>.<kind>.<name>`)
 * its value. For a subtree (a whole component, say) it names the highest layer that set anything
 * in it. A patch counts when one of its operations wrote the key, a part of it or a key above it.
 */
export function explainKey(input: ExplainInput, key: string): Explanation {
  const tokens = parseKey(key);
  if (tokens.length < 3)
    throw new MachinaError(
      "BAD_REQUEST",
      `key "${key}": name a component or a key in it: <service>.<kind>.<name>[.<key>…]`,
      {
        retryable: false,
        details: { field: "key" },
      },
    );
  const pointer = toPointer(tokens);
  const value = valueAt(input.effective, tokens);
  const at = (layer: ConfigLayer, origin: string, v: unknown = value): Explanation => ({
    key: pointer,
    value: v,
    layer,
    origin,
  });

  const env = input.files.env.find((s) => overlaps(s.tokens, tokens));
  if (env !== undefined) return at("env", `env ${env.name}`);

  // A patch that removed the key leaves what is under the files: the schema default, if any.
  let removed = false;
  for (let i = input.patches.length - 1; i >= 0 && !removed; i--) {
    const p = input.patches[i];
    const touched = p.ops.some(
      (op) =>
        op.op !== "test" &&
        (overlaps(parseKey(op.path), tokens) ||
          (op.op === "move" && op.from !== undefined && overlaps(parseKey(op.from), tokens))),
    );
    if (touched && value !== undefined) return at("patch", `patch ${p.hash}`);
    removed = touched;
  }

  const [service, kind, name, ...rest] = tokens;
  const { configDir, mode } = input.files;
  for (const [folder, layer] of [
    [mode, "mode file"],
    ["default", "default file"],
  ] as const) {
    if (removed || (layer === "mode file" && mode === "default")) continue;
    // Highest precedence first within a folder: YAML over JSON over XML.
    const files = readLayer(configDir, path.join(folder, service, kind), name).reverse();
    const file = files.find((f) => rest.length === 0 || valueAt(f.data, rest) !== undefined);
    if (file !== undefined) return at(layer, `${layer} ${file.origin}`);
  }

  const component = valueAt(input.effective, [service, kind, name]);
  if (component !== undefined && rest.length > 0) {
    const full = input.registry.withDefaults(`${service}/${kind}`, name, component, input.effective);
    const dflt = valueAt(full, rest);
    if (dflt !== undefined) return at("schema default", "schema default", dflt);
  }
  return at("unset", "unset", undefined);
}

/**
 * {@link explainKey}, and where no layer the process reads sets the key, the schema default
 * the owning service tells ({@link KindRegistry.ownerDefaults}): vertex declares no other
 * service's schemas, so it asks their owners, as it does to validate.
 */
export async function explainKeyWithOwner(input: ExplainInput, key: string): Promise<Explanation> {
  const e = explainKey(input, key);
  if (e.layer !== "unset") return e;
  const [service, kind, name, ...rest] = parseKey(key);
  const component = valueAt(input.effective, [service, kind, name]);
  if (component === undefined || rest.length === 0) return e;
  const full = await input.registry.ownerDefaults(`${service}/${kind}`, name, component, input.effective);
  const dflt = valueAt(full, rest);
  return dflt === undefined ? e : { ...e, value: dflt, layer: "schema default", origin: "schema default" };
}
