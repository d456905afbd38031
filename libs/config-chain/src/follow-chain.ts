import type { ChainState, ConfigChain } from "./config-chain";

/** A running {@link followChain}. */
export interface ChainFollower {
  /** The head last applied (successfully); the root until the first state is applied. */
  readonly head: string;
  /** Stops following; resolves when the last apply in flight is done. */
  stop(): Promise<void>;
}

/** Options of {@link followChain}. */
export interface FollowOptions {
  /**
   * Called when `apply` throws (the follower goes on with the next head) or when the chain
   * cannot be read (following ends). Default: ignore.
   */
  onError?(err: unknown, state: ChainState): void;
}

/**
 * Calls `apply` with the current state, then with each new head's, one at a time in chain
 * order: what a service runs to take patches live. `head` is what it reports to vertex.
 */
export async function followChain(
  chain: ConfigChain,
  apply: (state: ChainState) => void | Promise<void>,
  opts: FollowOptions = {},
): Promise<ChainFollower> {
  const watch = await chain.watch();
  let head = chain.root;
  const loop = (async () => {
    for await (const s of watch) {
      try {
        await apply(s);
        head = s.head;
      } catch (err) {
        opts.onError?.(err, s);
      }
    }
  })().catch((err: unknown) => {
    // Reading the chain failed (a patch missing from the bucket): following ends, visibly.
    opts.onError?.(err, chain.last);
  });
  return {
    get head() {
      return head;
    },
    async stop() {
      watch.stop();
      await loop;
    },
  };
}
