import type { DashboardSnapshot, DashboardSource } from "./dashboard-snapshot";

/** What a listener of the feed receives: a snapshot, or why none could be taken this time. */
export type FeedItem = { snapshot: DashboardSnapshot } | { error: string };

/**
 * One sampling loop shared by every open page: the source is called once per interval however
 * many pages listen, and not at all while none does, so an idle dashboard puts no load on the mesh.
 */
export class SnapshotFeed {
  private readonly listeners = new Set<(item: FeedItem) => void>();
  private inFlight: Promise<FeedItem> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly source: DashboardSource,
    private readonly intervalMs: number,
  ) {}

  /** Adds a listener, sends it a snapshot at once, then one per interval; returns its removal. */
  subscribe(listener: (item: FeedItem) => void): () => void {
    this.listeners.add(listener);
    void this.take().then((item) => {
      if (this.listeners.has(listener)) listener(item);
    });
    if (this.listeners.size === 1) this.schedule(this.intervalMs);
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stopTimer();
    };
  }

  /** Stops sampling and drops every listener. */
  close(): void {
    this.closed = true;
    this.listeners.clear();
    this.stopTimer();
  }

  // A page that connects during a tick shares that tick's snapshot instead of asking for another.
  private take(): Promise<FeedItem> {
    this.inFlight ??= this.source()
      .then((snapshot): FeedItem => ({ snapshot }))
      .catch((err: unknown): FeedItem => ({ error: (err as Error)?.message ?? String(err) }))
      .finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  // Ticks never overlap: the next is armed when this one is sent, for the rest of the interval.
  private schedule(delayMs: number): void {
    this.stopTimer();
    if (this.closed || this.listeners.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const started = Date.now();
      void this.take().then((item) => {
        for (const l of [...this.listeners]) l(item);
        if (this.timer === undefined) this.schedule(Math.max(0, this.intervalMs - (Date.now() - started)));
      });
    }, delayMs);
  }

  private stopTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
