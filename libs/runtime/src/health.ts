/** One dependency this process is waiting for, as /readyz shows it. */
export interface Waiting {
  /** Since when (epoch ms). */
  readonly since: number;
  /** The last failure, one line, no payloads. */
  readonly reason: string;
}

/**
 * The dependencies (Cassandra, NATS, the KV…) a process currently cannot reach. Work waits
 * while one is listed, and /readyz answers 503 naming it, so an operator sees what is down.
 */
export class Health {
  private readonly down = new Map<string, Waiting>();

  /** Marks `dependency` unreachable; keeps the first `since` while it stays down. */
  fail(dependency: string, reason: string): void {
    const was = this.down.get(dependency);
    this.down.set(dependency, {
      since: was?.since ?? Date.now(),
      reason: reason.replace(/[\r\n]+/g, " ").slice(0, 300),
    });
  }

  /** Marks `dependency` reachable again. */
  recover(dependency: string): void {
    this.down.delete(dependency);
  }

  /** True when nothing is down. */
  ok(): boolean {
    return this.down.size === 0;
  }

  /** What is down, by dependency name. */
  waiting(): Record<string, Waiting> {
    return Object.fromEntries(this.down);
  }
}
