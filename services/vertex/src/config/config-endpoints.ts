import { defineEndpoint } from "@machina/runtime";
import type { EndpointDef } from "@machina/runtime";
import type { JsonValue, PatchOp } from "@machina/protos";
import type { MeshNames } from "@machina/subjects";
import { MachinaError } from "@machina/wire";
import { parseKey, toPointer, valueAt } from "@machina/config-chain";
import type { ChainPatch, ConfigChain } from "@machina/config-chain";

/** What the config endpoints serve from. */
export interface ConfigEndpointDeps {
  chain: ConfigChain;
  names: MeshNames;
}

/**
 * `config.get`, `config.patch`, `config.history` and `config.explain`, for the service that
 * serves the chain to return from its setup.
 */
export function configEndpoints(deps: ConfigEndpointDeps): EndpointDef[] {
  const { chain, names } = deps;
  return [
    defineEndpoint({
      name: "config-get",
      subject: names.config.get,
      request: "ConfigGetRequest",
      reply: "ConfigDocument",
      description: "The config chain's head and its component tree (files plus patches), or one subtree by key",
      async handler(req) {
        const s = await chain.current();
        const tokens = parseKey(req.path);
        const value = valueAt(s.tree, tokens);
        if (value === undefined)
          throw new MachinaError("NOT_FOUND", `config key ${toPointer(tokens)} is not in the tree at head ${s.head}`, {
            retryable: false,
            details: { key: toPointer(tokens), head: s.head },
          });
        return {
          head: s.head,
          root: s.root,
          path: toPointer(tokens),
          value: value as JsonValue,
          length: s.patches.length,
        };
      },
    }),
    defineEndpoint({
      name: "config-patch",
      subject: names.config.patch,
      request: "ConfigPatchRequest",
      reply: "ConfigPatch",
      description: "Append JSON-Patch operations after the head (CONFLICT when parent is not the head)",
      async handler(req) {
        return wirePatch(await chain.append(req));
      },
    }),
    defineEndpoint({
      name: "config-history",
      subject: names.config.history,
      request: "ConfigHistoryRequest",
      reply: "ConfigHistory",
      description: "The config chain's patches, oldest first (the newest `limit` when set)",
      async handler(req) {
        const s = await chain.current();
        const limit = req.limit > 0 ? req.limit : s.patches.length;
        return { root: s.root, head: s.head, patches: s.patches.slice(-limit).map(wirePatch) };
      },
    }),
    defineEndpoint({
      name: "config-explain",
      subject: names.config.explain,
      request: "ConfigExplainRequest",
      reply: "ConfigExplainReply",
      description: "Which layer gave a key its value: env, patch, mode file, default file or schema default",
      async handler(req) {
        const e = await chain.explain(req.key);
        if (e.layer === "unset")
          throw new MachinaError(
            "NOT_FOUND",
            `config key ${e.key}: no layer sets it (env, patch, files, schema default)`,
            {
              retryable: false,
              details: { key: e.key, head: e.head },
            },
          );
        return { key: e.key, value: (e.value ?? null) as JsonValue, layer: e.layer, origin: e.origin, head: e.head };
      },
    }),
  ];
}

function wirePatch(p: ChainPatch) {
  const ops: PatchOp[] = p.ops.map((o) => ({ op: o.op, path: o.path, value: o.value ?? null, from: o.from ?? "" }));
  return { hash: p.hash, parent: p.parent, ops, author: p.author, createdAt: p.createdAt };
}
