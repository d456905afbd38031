// What the live-config tests share: the env of in-process services that follow the chain with a
// fast heartbeat, patching the chain at its head, and waiting until an instance reports a head.
import assert from "node:assert/strict";
import type { ConfigPatch, NodeInfo } from "@machina/protos";
import type { MeshClient } from "@machina/runtime";
import type { MeshNames } from "@machina/subjects";
import { MachinaError } from "@machina/wire";
import { eventually } from "./eventually";
import { NATS_URL } from "./nats-env";

/** One RFC 6902 operation, as tests write them. */
export type PatchOp = { op: string; path: string; value?: unknown };

/** Env of services in a live-config test: quiet, no ports, heartbeats every 300 ms, no monitoring. */
export function liveEnv(prefix: string, more: Record<string, string> = {}): Record<string, string> {
  return {
    MACHINA_NATS_URL: NATS_URL,
    MACHINA_MESH_PREFIX: prefix,
    MACHINA_HTTP_PORT: "0",
    MACHINA_LOG_LEVEL: "silent",
    MACHINA_VERTEX_HEARTBEAT_MS: "300",
    MACHINA_VERTEX_MONITORING_INTERVAL_MS: "0",
    MACHINA_VERTEX_DASHBOARD_PORT: "0",
    ...more,
  };
}

/** The MachinaError a request is answered with; fails the test when it succeeds. */
export async function refused(p: Promise<unknown>): Promise<MachinaError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof MachinaError, String(err));
    return err;
  }
  assert.fail("expected an error reply");
}

/** The config chain as a test drives it through vertex. */
export interface ChainDriver {
  /** The chain's head. */
  head(): Promise<string>;
  /** Appends `ops` on the current head. */
  patch(ops: readonly PatchOp[]): Promise<ConfigPatch>;
  /** The head instance `node` reports in vertex.nodes (undefined while it is not listed). */
  nodeHead(node: string): Promise<string | undefined>;
  /** Patches, then waits until instance `node` reports the new head (it applied it). */
  applied(ops: readonly PatchOp[], node: string): Promise<ConfigPatch>;
}

/** A {@link ChainDriver}; `timeoutMs` (default 10 s) bounds a patch request and each wait for a head. */
export function chainDriver(
  client: MeshClient,
  names: MeshNames,
  opts: { author?: string; timeoutMs?: number } = {},
): ChainDriver {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const driver: ChainDriver = {
    head: async () => (await client.request(names.config.get, "ConfigGetRequest", { path: "" }, "ConfigDocument")).head,
    patch: async (ops) =>
      client.request(
        names.config.patch,
        "ConfigPatchRequest",
        { parent: await driver.head(), ops: ops as never, author: opts.author ?? "live config test" },
        "ConfigPatch",
        { timeoutMs },
      ),
    nodeHead: async (node) =>
      (await client.request(names.vertex.nodes, "Empty", {}, "NodeList")).nodes.find((n: NodeInfo) => n.id === node)
        ?.configHead,
    applied: async (ops, node) => {
      const p = await driver.patch(ops);
      await eventually(
        `${node} at the new head`,
        async () => ((await driver.nodeHead(node)) === p.hash ? true : undefined),
        timeoutMs,
        50,
      );
      return p;
    },
  };
  return driver;
}
