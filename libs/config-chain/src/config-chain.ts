import type { Kvm } from "@nats-io/kv";
import type { ConfigSourceOptions } from "@machina/config";
import type { PatchOp } from "@machina/protos";
import { MachinaError } from "@machina/wire";
import { applyOps } from "./apply-ops";
import { ChainStore, short } from "./chain-store";
import type { StoredHead } from "./chain-store";
import { normalizeOps, patchHash } from "./config-patch";
import type { ChainPatch, ConfigTree } from "./config-patch";
import { withEnv } from "./env-layer";
import { explainKeyWithOwner } from "./explain";
import type { Explanation } from "./explain";
import { loadFileConfig } from "./file-config";
import type { FileConfig } from "./file-config";
import { KindRegistry } from "./kind-registry";
import { ChainWatch } from "./chain-watch";

/** The chain at one head, and the trees it gives. */
export interface ChainState {
  /** Hash of the file config. */
  root: string;
  /** Hash of the last patch; the root while there is none. This is what a service reports. */
  head: string;
  /** The patches, oldest first. */
  patches: readonly ChainPatch[];
  /** Files plus patches: the same in every process that reads the same files. */
  tree: ConfigTree;
  /** `tree` with this process's env overrides laid over it: what this process should run. */
  effective: ConfigTree;
}

/** A patch to append. */
export interface PatchRequest {
  /** The head the operations were written against. */
  parent: string;
  /** RFC 6902 operations on the tree. */
  ops: readonly Partial<PatchOp>[];
  /** Who asks (a person or a tool), kept on the chain. */
  author: string;
}

/** Options of {@link ConfigChain.open}. */
export interface ConfigChainOptions extends ConfigSourceOptions {
  kvm: Kvm;
  /** The KV bucket, normally `names.buckets.config`. */
  bucket: string;
  /** Validators patches are checked with. Default: an empty registry that refuses changes to any kind. */
  registry?: KindRegistry;
  /** Bucket replicas. Default 1. */
  replicas?: number;
  /** Clock for `createdAt`, epoch ms. Default Date.now. */
  now?: () => number;
}

const MAX_AUTHOR = 200;

/**
 * The live configuration of one process: the file config (the root), the patches on its chain
 * in the bucket, and the env overrides over both.
 */
export class ConfigChain {
  private state: ChainState;

  private constructor(
    /** The file config the chain starts from. */
    readonly files: FileConfig,
    private readonly store: ChainStore,
    /** The validators patches are checked with. */
    readonly registry: KindRegistry,
    private readonly now: () => number,
  ) {
    this.state = {
      root: files.root,
      head: files.root,
      patches: [],
      tree: files.tree,
      effective: withEnv(files.tree, files.env),
    };
  }

  /** Reads the files, opens the bucket and catches up with the stored head. */
  static async open(opts: ConfigChainOptions): Promise<ConfigChain> {
    const files = loadFileConfig(opts);
    const store = await ChainStore.open(opts.kvm, opts.bucket, { replicas: opts.replicas });
    const chain = new ConfigChain(files, store, opts.registry ?? new KindRegistry(), opts.now ?? Date.now);
    await chain.current();
    return chain;
  }

  /** The root hash: SHA-256 of the file config's canonical JSON. */
  get root(): string {
    return this.files.root;
  }

  /** The state last read; {@link current} reads the bucket. */
  get last(): ChainState {
    return this.state;
  }

  /** Reads the head from the bucket and returns the state there. */
  async current(): Promise<ChainState> {
    return this.advance(await this.store.head(this.root));
  }

  /**
   * Appends a patch after `parent`: CONFLICT (details.head) when `parent` is not the head,
   * BAD_REQUEST when an operation cannot apply or a changed component fails its kind's
   * validation; nothing is stored in either case. Returns the stored patch (its hash is the new head).
   */
  async append(req: PatchRequest): Promise<ChainPatch> {
    const author = (req.author ?? "").trim();
    if (author === "" || author.length > MAX_AUTHOR)
      throw new MachinaError("BAD_REQUEST", `author: say who makes the change (1 to ${MAX_AUTHOR} characters)`, {
        retryable: false,
        details: { field: "author" },
      });
    const ops = normalizeOps(req.ops);
    const stored = await this.store.head(this.root);
    if (req.parent !== stored.head) throw conflict(req.parent, stored);
    const before = await this.advance(stored);
    const tree = applyOps(before.tree, ops);
    this.registry.check(before.effective, withEnv(tree, this.files.env));
    // The owners check their own parts (over NATS, in vertex): the plain tree, each lays its own env over it.
    await this.registry.checkServices(before.tree, tree);
    const body = { parent: stored.head, ops, author, createdAt: this.now() };
    const patch: ChainPatch = { hash: patchHash(body), ...body };
    const lost = await this.store.append(this.root, patch, stored);
    if (lost !== null) throw conflict(req.parent, lost);
    await this.advance({ head: patch.hash, length: stored.length + 1 });
    return patch;
  }

  /** Which layer gave `key` its value, at the current head. */
  async explain(key: string): Promise<Explanation & { head: string }> {
    const s = await this.current();
    return {
      ...(await explainKeyWithOwner(
        { files: this.files, patches: s.patches, effective: s.effective, registry: this.registry },
        key,
      )),
      head: s.head,
    };
  }

  /**
   * Follows the chain: yields the current state, then each new head as it is stored, until
   * stopped. A service applies `effective` and reports `head`.
   */
  async watch(): Promise<ChainWatch> {
    return ChainWatch.start(
      await this.store.watchHead(this.root),
      (h) => this.advance(h),
      () => this.current(),
    );
  }

  // Brings the cached state to `to`: patches are immutable, so only the new ones are read and applied.
  private async advance(to: Omit<StoredHead, "revision">): Promise<ChainState> {
    const s = this.state;
    if (to.head === s.head) return s;
    const fresh = await this.store.between(this.root, s.head, to.head, to.length);
    // The walk stops at the cached head or at the root; at the root (a bucket reset, say) the
    // cached patches are not ancestors and everything is replayed over the files.
    const fromCache = fresh.length > 0 && fresh[0].parent === s.head;
    let tree = fromCache ? s.tree : this.files.tree;
    for (const p of fresh) {
      try {
        tree = applyOps(tree, p.ops);
      } catch (err) {
        const why = (err as Error).message;
        throw new MachinaError(
          "INTERNAL",
          `config chain ${short(this.root)}: stored patch ${p.hash} does not apply: ${why}`,
          {
            retryable: false,
          },
        );
      }
    }
    const patches = fromCache ? [...s.patches, ...fresh] : fresh;
    const next: ChainState = {
      root: this.root,
      head: to.head,
      patches,
      tree,
      effective: withEnv(tree, this.files.env),
    };
    // Concurrent calls may finish out of order: the cache only moves forward.
    if (this.state === s || patches.length > this.state.patches.length) this.state = next;
    return next;
  }
}

function conflict(parent: string, stored: Omit<StoredHead, "revision">): MachinaError {
  return new MachinaError(
    "CONFLICT",
    `parent ${short(parent)} is not the head of the config chain; the head is ${stored.head}: read config.get, rebase the change and send it again`,
    { retryable: false, details: { head: stored.head, length: stored.length, parent } },
  );
}
