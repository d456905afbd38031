/**
 * The best `capacity` items offered so far under `before` (a comes first when before(a, b)),
 * kept in a binary heap whose root is the worst one kept, so a scan of any size holds at most
 * `capacity` items and an item that cannot make the cut costs one comparison.
 */
export class TopHeap<T> {
  private readonly items: T[] = [];

  constructor(
    private readonly capacity: number,
    private readonly before: (a: T, b: T) => boolean,
  ) {}

  /** Offers one item; it is kept when fewer than capacity are held or it comes before the worst. */
  offer(item: T): void {
    const h = this.items;
    if (h.length < this.capacity) {
      h.push(item);
      this.up(h.length - 1);
    } else if (this.capacity > 0 && this.before(item, h[0])) {
      h[0] = item;
      this.down(0);
    }
  }

  /** How many items are kept. */
  get size(): number {
    return this.items.length;
  }

  /** The kept items, best first. */
  sorted(): T[] {
    return [...this.items].sort((a, b) => (this.before(a, b) ? -1 : this.before(b, a) ? 1 : 0));
  }

  // The heap is ordered "worst first": a parent comes after (or ties with) its children.
  private worse(i: number, j: number): boolean {
    return this.before(this.items[j], this.items[i]);
  }

  private up(i: number): void {
    const h = this.items;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.worse(i, parent)) return;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }

  private down(i: number): void {
    const h = this.items;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let worst = i;
      if (l < h.length && this.worse(l, worst)) worst = l;
      if (r < h.length && this.worse(r, worst)) worst = r;
      if (worst === i) return;
      [h[i], h[worst]] = [h[worst], h[i]];
      i = worst;
    }
  }
}
