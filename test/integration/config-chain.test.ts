// The config chain against a real nats-server: the four config endpoints served by a small
// in-process service, compare-and-set under concurrent patches, refusal of invalid patches
// before anything is stored, history, explain per layer, a watcher, and a restart at the head.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { Kvm } from "@nats-io/kv";
import {
  ChainStore,
  ConfigChain,
  KindRegistry,
  followChain,
  loadFileConfig,
  normalizeOps,
  patchHash,
} from "@machina/config-chain";
import type { ChainState } from "@machina/config-chain";
import { componentKinds as fetchKinds } from "@machina/fetch";
import { MeshClient, startService } from "@machina/runtime";
import { configEndpoints } from "@machina/vertex";
import type { RunningService, ServiceSpec } from "@machina/runtime";
import { meshNames } from "@machina/subjects";
import { MachinaError } from "@machina/wire";
import { refused } from "../support/live-config";
import { NATS_URL, removeNetwork, uniquePrefix } from "../support/nats-env";

const REPO_CONFIG = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../config/default");
const prefix = uniquePrefix("cfgchain");
const names = meshNames(prefix);
const env = {
  MACHINA_NATS_URL: NATS_URL,
  MACHINA_MESH_PREFIX: prefix,
  MACHINA_HTTP_PORT: "0",
  MACHINA_LOG_LEVEL: "silent",
  MACHINA_FETCH_SOURCES_SITESTATS_MANAGER_BASE_URL: "http://127.0.0.1:9999",
};

// The repo's sitestats source as the default file, and a mode folder that changes its timeout.
const configDir = mkdtempSync(path.join(tmpdir(), "machina-chain-"));
mkdirSync(path.join(configDir, "default/fetch/sources"), { recursive: true });
mkdirSync(path.join(configDir, "live/fetch/sources"), { recursive: true });
writeFileSync(
  path.join(configDir, "default/fetch/sources/sitestats.yaml"),
  readFileSync(path.join(REPO_CONFIG, "fetch/sources/sitestats.yaml")),
);
writeFileSync(path.join(configDir, "live/fetch/sources/sitestats.yaml"), "manager:\n  timeout: 20s\n");

const spec: ServiceSpec<Record<string, never>> = {
  name: "vertex",
  version: "0.0.1",
  description: "serves the config chain for this test",
  httpPort: 0,
  async setup(ctx) {
    const chain = await ConfigChain.open({
      ...ctx.configSource,
      kvm: ctx.kvm,
      bucket: ctx.names.buckets.config,
      registry: new KindRegistry().register(...fetchKinds),
    });
    return { endpoints: configEndpoints({ chain, names: ctx.names }) };
  },
};

const start = () => startService(spec, { handleSignals: false, configDir, mode: "live", env });

let svc: RunningService<Record<string, never>>;
let nc: NatsConnection;
let client: MeshClient;
const root = loadFileConfig({ configDir, mode: "live", env: {} }).root;
const LIMIT = "/fetch/sources/sitestats/limiter/windows/0/limit";

const get = (p = "") => client.request(names.config.get, "ConfigGetRequest", { path: p }, "ConfigDocument");
const patch = (parent: string, ops: { op: string; path: string; value?: unknown }[], author = "test") =>
  client.request(names.config.patch, "ConfigPatchRequest", { parent, ops: ops as never, author }, "ConfigPatch");
const history = () => client.request(names.config.history, "ConfigHistoryRequest", {}, "ConfigHistory");
const explain = (key: string) =>
  client.request(names.config.explain, "ConfigExplainRequest", { key }, "ConfigExplainReply");

async function storedKeys(): Promise<string[]> {
  const kv = await new Kvm(nc).open(names.buckets.config);
  const out: string[] = [];
  for await (const k of await kv.keys()) out.push(k);
  return out.sort();
}

describe("config chain", () => {
  before(async () => {
    nc = await connect({ servers: NATS_URL });
    client = new MeshClient(nc);
    svc = await start();
  });

  after(async () => {
    await svc?.stop();
    client?.close();
    await removeNetwork(nc, names);
    await nc?.close();
  });

  it("starts at the root: the hash of the file config, env left out", async () => {
    const doc = await get();
    assert.equal(doc.root, root);
    assert.equal(doc.head, root);
    assert.equal(doc.length, 0);
    const limiter = await get("fetch.sources.sitestats.limiter");
    assert.deepEqual(limiter.value, {
      windows: [
        { limit: 10, per: "1s" },
        { limit: 5000, per: "1d", align: "clock" },
      ],
    });
    assert.equal((await get("/fetch/sources/sitestats/manager/timeout")).value, "20s", "the mode file is merged");
    assert.equal((await refused(get("fetch.sources.nope"))).code, "NOT_FOUND");
  });

  let first = "";

  it("lets exactly one of two patches on the same parent win; the other gets CONFLICT naming the head", async () => {
    const results = await Promise.allSettled([
      patch(root, [{ op: "replace", path: LIMIT, value: 7 }], "ana"),
      patch(root, [{ op: "replace", path: LIMIT, value: 8 }], "bo"),
    ]);
    const won = results.filter((r) => r.status === "fulfilled");
    const lost = results.filter((r) => r.status === "rejected");
    assert.equal(won.length, 1, JSON.stringify(results));
    assert.equal(lost.length, 1);
    const winner = won[0].value;
    const err = lost[0].reason as MachinaError;
    assert.equal(err.code, "CONFLICT");
    assert.equal(err.details.head, winner.hash);
    assert.match(err.message, new RegExp(winner.hash));
    assert.equal(winner.parent, root);
    first = winner.hash;
    const doc = await get(LIMIT);
    assert.equal(doc.head, first);
    assert.equal(doc.value, winner.author === "ana" ? 7 : 8);
    // The loser's patch is not left behind: the bucket holds the head and the one patch.
    assert.deepEqual(await storedKeys(), [`head.${root}`, `patch.${first}`].sort());
  });

  it("moves the head by compare-and-set: of two appends read at the same head, one wins", async () => {
    const other = `${prefix}_cas`;
    const store = await ChainStore.open(new Kvm(nc), other);
    try {
      const at = await store.head("r0");
      const make = (value: number) => {
        const body = {
          parent: "r0",
          ops: normalizeOps([{ op: "add", path: "/x", value }]),
          author: "t",
          createdAt: value,
        };
        return { hash: patchHash(body), ...body };
      };
      const [a, b] = [make(1), make(2)];
      const outcomes = await Promise.all([store.append("r0", a, at), store.append("r0", b, at)]);
      assert.equal(outcomes.filter((o) => o === null).length, 1, "exactly one append wins");
      const winner = outcomes[0] === null ? a : b;
      const loser = outcomes.find((o) => o !== null)!;
      assert.deepEqual([loser.head, loser.length], [winner.hash, 1]);
      assert.equal((await store.head("r0")).head, winner.hash);
      assert.equal(await store.patch(winner === a ? b.hash : a.hash), undefined, "the losing patch is not kept");
    } finally {
      await (await new Kvm(nc).open(other)).destroy();
    }
  });

  it("refuses a patch on a stale parent", async () => {
    const err = await refused(patch(root, [{ op: "replace", path: LIMIT, value: 9 }]));
    assert.equal(err.code, "CONFLICT");
    assert.equal(err.details.head, first);
  });

  it("refuses a patch that fails the kind's validation, naming component and field, and stores nothing", async () => {
    const keys = await storedKeys();
    const typed = await refused(patch(first, [{ op: "replace", path: LIMIT, value: "ten" }]));
    assert.equal(typed.code, "BAD_REQUEST");
    assert.match(typed.message, /^fetch\/sources\/sitestats: limiter\.windows\[0\]\.limit: expected an integer/);
    assert.equal(typed.details.field, "limiter.windows[0].limit");
    const unknown = await refused(patch(first, [{ op: "add", path: "/fetch/sources/sitestats/colour", value: 1 }]));
    assert.match(unknown.message, /sitestats: colour: unknown key/);
    const unresolvable = await refused(
      patch(first, [{ op: "replace", path: "/fetch/sources/nope/limiter", value: 1 }]),
    );
    assert.match(unresolvable.message, /^ops\[0\] \(replace \/fetch\/sources\/nope\/limiter\)/);
    const noAuthor = await refused(patch(first, [{ op: "replace", path: LIMIT, value: 2 }], ""));
    assert.match(noAuthor.message, /^author/);
    assert.deepEqual(await storedKeys(), keys);
    assert.equal((await get()).head, first);
  });

  let second = "";

  it("lists the history oldest first, each patch naming its parent", async () => {
    const p = await patch(first, [
      { op: "add", path: "/fetch/sources/sitestats/limiter/windows/-", value: { limit: 100, per: "1m" } },
    ]);
    second = p.hash;
    const h = await history();
    assert.equal(h.root, root);
    assert.equal(h.head, second);
    assert.deepEqual(
      h.patches.map((x) => [x.hash, x.parent]),
      [
        [first, root],
        [second, first],
      ],
    );
    assert.deepEqual(h.patches[1].ops, [
      { op: "add", path: "/fetch/sources/sitestats/limiter/windows/-", value: { limit: 100, per: "1m" }, from: "" },
    ]);
    assert.ok(h.patches[1].createdAt >= h.patches[0].createdAt);
  });

  it("explains each key by the layer that gave it", async () => {
    const patched = await explain(LIMIT);
    assert.equal(patched.layer, "patch");
    assert.equal(patched.origin, `patch ${first}`);
    assert.equal(patched.head, second);
    const byEnv = await explain("fetch.sources.sitestats.manager.base_url");
    assert.deepEqual(
      [byEnv.layer, byEnv.origin, byEnv.value],
      ["env", "env MACHINA_FETCH_SOURCES_SITESTATS_MANAGER_BASE_URL", "http://127.0.0.1:9999"],
    );
    const byMode = await explain("fetch.sources.sitestats.manager.timeout");
    assert.deepEqual(
      [byMode.layer, byMode.origin],
      ["mode file", "mode file config/live/fetch/sources/sitestats.yaml"],
    );
    const byDefault = await explain("fetch.sources.sitestats.queries.site.path");
    assert.deepEqual(
      [byDefault.layer, byDefault.origin],
      ["default file", "default file config/default/fetch/sources/sitestats.yaml"],
    );
    const bySchema = await explain("fetch.sources.sitestats.manager.retries.max_delay");
    assert.equal(bySchema.layer, "schema default");
    assert.equal(bySchema.value, 10_000);
    assert.equal((await refused(explain("fetch.sources.sitestats.nothing_here"))).code, "NOT_FOUND");
  });

  it("tells a watcher each new head, in chain order, with the tree it gives", async () => {
    const chain = await ConfigChain.open({
      configDir,
      mode: "live",
      env,
      kvm: new Kvm(nc),
      bucket: names.buckets.config,
    });
    const seen: ChainState[] = [];
    const follower = await followChain(chain, (s) => void seen.push(s));
    const until = async (ok: () => boolean) => {
      for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 25));
      assert.ok(ok(), `watcher saw ${seen.map((s) => s.head).join(", ")}`);
    };
    await until(() => seen.length === 1);
    assert.equal(seen[0].head, second);
    const third = await patch(second, [{ op: "replace", path: LIMIT, value: 3 }]);
    await until(() => seen.length === 2);
    assert.equal(seen[1].head, third.hash);
    assert.equal(follower.head, third.hash);
    const windows = (seen[1].effective.fetch.sources.sitestats as { limiter: { windows: { limit: number }[] } }).limiter
      .windows;
    assert.deepEqual(
      windows.map((w) => w.limit),
      [3, 5000, 100],
    );
    assert.equal(
      (seen[1].effective.fetch.sources.sitestats as { manager: { base_url: string } }).manager.base_url,
      "http://127.0.0.1:9999",
      "env stays over the patched tree",
    );
    await follower.stop();
  });

  it("comes up at the same head in a new service instance", async () => {
    const before = await get();
    await svc.stop();
    svc = await start();
    const after = await get();
    assert.equal(after.head, before.head);
    assert.equal(after.length, 3);
    assert.deepEqual(after.value, before.value);
  });
});
