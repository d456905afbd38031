import type { KV, Kvm } from "@nats-io/kv";
import { isCasConflict } from "./cas-conflict";
import { MachinaError } from "@machina/wire";
import type { ChainPatch } from "./config-patch";

/** Where a chain stands in the bucket. */
export interface StoredHead {
  /** The last patch's hash; the root hash while the chain is empty. */
  head: string;
  /** Patches on the chain. */
  length: number;
  /** KV revision of the head key, for compare-and-set; 0 while the key does not exist. */
  revision: number;
}

/** Options of {@link ChainStore.open}. */
export interface ChainStoreOptions {
  /** Bucket replicas. Default 1. */
  replicas?: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * The chain in a JetStream KV bucket. Patches are content-addressed (`patch.<hash>`, written
 * once); each root has its own head (`head.<root>`), moved only by compare-and-set on its
 * revision, so of two patches on the same parent exactly one becomes the head. A new file config
 * (a new root) starts a chain of its own instead of replaying patches made against other files.
 */
export class ChainStore {
  /** Patches are immutable: once read, kept. */
  private readonly patches = new Map<string, ChainPatch>();

  private constructor(private readonly kv: KV) {}

  /** Opens (creating if needed) the bucket. */
  static async open(kvm: Kvm, bucket: string, opts: ChainStoreOptions = {}): Promise<ChainStore> {
    return new ChainStore(await kvm.create(bucket, { history: 1, replicas: opts.replicas ?? 1 }));
  }

  /** The head of the chain that starts at `root`. */
  async head(root: string): Promise<StoredHead> {
    const e = await this.kv.get(headKey(root));
    if (e === null || e.operation !== "PUT" || e.value.length === 0) return { head: root, length: 0, revision: 0 };
    return { ...parseHead(e.value), revision: e.revision };
  }

  /** One patch by hash; undefined when the bucket has none. */
  async patch(hash: string): Promise<ChainPatch | undefined> {
    const known = this.patches.get(hash);
    if (known !== undefined) return known;
    const e = await this.kv.get(patchKey(hash));
    if (e === null || e.operation !== "PUT" || e.value.length === 0) return undefined;
    const p = JSON.parse(dec.decode(e.value)) as ChainPatch;
    this.patches.set(hash, p);
    return p;
  }

  /**
   * The patches from just after `from` (a hash on the chain, or the root) up to `head`, oldest
   * first. Walks parent links back from the head.
   */
  async between(root: string, from: string, head: string, length: number): Promise<ChainPatch[]> {
    const out: ChainPatch[] = [];
    let at = head;
    while (at !== from && at !== root) {
      const p = await this.patch(at);
      if (p === undefined)
        throw new MachinaError("INTERNAL", `config chain ${short(root)}: patch ${at} is missing from the bucket`, {
          retryable: false,
        });
      out.push(p);
      // Parent links never loop in a chain this store wrote; a bucket edited by hand might.
      if (out.length > length)
        throw new MachinaError("INTERNAL", `config chain ${short(root)}: longer than its head says (${length})`, {
          retryable: false,
        });
      at = p.parent;
    }
    return out.reverse();
  }

  /**
   * Appends `patch` if `expected` is still the head; otherwise stores nothing and returns the
   * head that won.
   */
  async append(root: string, patch: ChainPatch, expected: StoredHead): Promise<StoredHead | null> {
    let created = false;
    try {
      await this.kv.create(patchKey(patch.hash), enc.encode(JSON.stringify(patch)));
      created = true;
    } catch (err) {
      // The same hash is the same content: an identical patch is already stored.
      if (!isCasConflict(err)) throw err;
    }
    const next = enc.encode(JSON.stringify({ head: patch.hash, length: expected.length + 1 }));
    try {
      if (expected.revision === 0) await this.kv.create(headKey(root), next);
      else await this.kv.update(headKey(root), next, expected.revision);
    } catch (err) {
      if (!isCasConflict(err)) throw err;
      // Nothing refers to a patch that lost the race: it goes, so the bucket holds the chain only.
      if (created) await this.kv.purge(patchKey(patch.hash)).catch(() => undefined);
      return this.head(root);
    }
    this.patches.set(patch.hash, patch);
    return null;
  }

  /** Watches the head of `root`'s chain; yields every head it moves to (the current one first, if any). */
  async watchHead(root: string): Promise<HeadWatch> {
    const iter = await this.kv.watch({ key: headKey(root) });
    return {
      stop: () => iter.stop(),
      async *[Symbol.asyncIterator]() {
        for await (const e of iter) {
          if (e.operation !== "PUT" || e.value.length === 0) continue;
          yield { ...parseHead(e.value), revision: e.revision };
        }
      },
    };
  }
}

/** The heads a chain moves to, until stopped. */
export interface HeadWatch extends AsyncIterable<StoredHead> {
  stop(): void;
}

function headKey(root: string): string {
  return `head.${root}`;
}

function patchKey(hash: string): string {
  return `patch.${hash}`;
}

function parseHead(bytes: Uint8Array): { head: string; length: number } {
  const v = JSON.parse(dec.decode(bytes)) as { head: string; length: number };
  return { head: v.head, length: v.length };
}

/** The first 12 hex digits of a hash, for messages. */
export function short(hash: string): string {
  return hash.slice(0, 12);
}
