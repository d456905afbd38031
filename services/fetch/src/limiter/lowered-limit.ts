/** A limit an upstream stated below the declared one, in force from `from` until `until` (server times). */
export interface Lowering {
  readonly limit: number;
  readonly from: number;
  readonly until: number;
}

/**
 * The limit a window enforces: the declared one, or a lower one an upstream stated, for as long
 * as that statement holds. Nothing can raise it above the declared limit.
 */
export class LoweredLimit {
  private low: Lowering | null = null;

  constructor(readonly declared: number) {}

  /** The limit in force at server time `t`. */
  at(t: number): number {
    return this.current(t)?.limit ?? this.declared;
  }

  /** The lowering in force at `t`, or null. */
  current(t: number): Lowering | null {
    return this.low !== null && this.low.from <= t && t < this.low.until ? this.low : null;
  }

  /** The lowering in force at `t` or still to come, or null. */
  held(t: number): Lowering | null {
    return this.low !== null && t < this.low.until ? this.low : null;
  }

  /** Sets the lowering; null, or a limit not below the declared one, goes back to the declared limit. */
  set(low: Lowering | null): void {
    // At least one call: a zero limit would leave no time at which a call fits, and the
    // upstream's own pause (Remaining 0, Retry-After) says when to stop entirely.
    this.low =
      low === null || low.limit >= this.declared ? null : { ...low, limit: Math.max(1, Math.floor(low.limit)) };
  }
}
