/** One thing that falls due at `due`: a window to close or evict, a partial that times out. */
export interface DueItem {
  due: number;
  keyId: string;
  /** Which of the key's things (a window start, a partial's first position). */
  tag: string;
}

/**
 * Items by due time (a binary min-heap), ties by key and tag: things due at the same moment fire
 * in the same order however the queue was filled (as it went, or rebuilt from stored state).
 */
export class DueQueue {
  private heap: DueItem[] = [];

  get size(): number {
    return this.heap.length;
  }

  /** The earliest item, or undefined. */
  peek(): DueItem | undefined {
    return this.heap[0];
  }

  push(item: DueItem): void {
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }

  /** Removes and returns the earliest item. */
  pop(): DueItem | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(l, m)) m = l;
        if (r < h.length && this.less(r, m)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return { due: top.due, keyId: top.keyId, tag: top.tag };
  }

  clear(): void {
    this.heap = [];
  }

  private less(a: number, b: number): boolean {
    const x = this.heap[a];
    const y = this.heap[b];
    if (x.due !== y.due) return x.due < y.due;
    if (x.keyId !== y.keyId) return x.keyId < y.keyId;
    return x.tag < y.tag;
  }
}
