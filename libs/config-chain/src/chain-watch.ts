import type { HeadWatch, StoredHead } from "./chain-store";
import type { ChainState } from "./config-chain";

/**
 * The states a chain moves through, as a service applies them: the current state first, then
 * one per new head, never the same head twice in a row. Ends when stopped.
 */
export class ChainWatch implements AsyncIterable<ChainState> {
  private stopped = false;

  private constructor(
    private readonly heads: HeadWatch,
    private readonly advance: (h: Omit<StoredHead, "revision">) => Promise<ChainState>,
    private readonly current: () => Promise<ChainState>,
  ) {}

  /** Starts watching; the KV watch is open before the current head is read, so no head is missed. */
  static start(
    heads: HeadWatch,
    advance: (h: Omit<StoredHead, "revision">) => Promise<ChainState>,
    current: () => Promise<ChainState>,
  ): ChainWatch {
    return new ChainWatch(heads, advance, current);
  }

  /** Ends the iteration (a pending `for await` returns). */
  stop(): void {
    this.stopped = true;
    this.heads.stop();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ChainState> {
    let last = "";
    const first = await this.current();
    if (!this.stopped) {
      last = first.head;
      yield first;
    }
    for await (const h of this.heads) {
      if (this.stopped) return;
      // A head at or behind the one already yielded (the watch's first entry, usually) is old news.
      if (h.head === last) continue;
      const s = await this.advance(h);
      if (s.head === last) continue;
      last = s.head;
      yield s;
    }
  }
}
