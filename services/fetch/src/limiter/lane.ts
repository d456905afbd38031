import type { Acquired } from "./limiter-types";
import type { WindowGate } from "./window-gate";

/** A caller waiting for its grant. */
export interface Waiter {
  resolve(a: Acquired): void;
  reject(e: Error): void;
}

/**
 * What the limiter admits calls to: a source, or one credential of a source's pool. Each lane
 * has its own queue, windows and pauses; a pool's credentials also share the pool's windows.
 */
export interface Lane {
  readonly source: string;
  /** The credential's stable id; null for a source without a pool (and for a pool's own lane). */
  readonly credential: string | null;
  /** Prefix of its keys in the limiter bucket: the source name, or `<source>.c.<credential>`. */
  readonly key: string;
  /** How messages name it, e.g. `source sitestats` or `source sitestats, credential primary`. */
  readonly what: string;
  /** Every window a call must fit, shortest first: its own and its pool's. Empty when unlimited. */
  readonly gates: readonly WindowGate[];
  /** Its own windows, which the upstream's answers to its calls correct. */
  readonly own: readonly WindowGate[];
  /** A credential's pool lane: the windows and pauses of the whole source; null otherwise. */
  readonly parent: Lane | null;
  readonly unlimited: boolean;
  readonly queue: Waiter[];
  busy: boolean;
  /** Server time until which the upstream paused this lane. */
  blockedUntil: number;
  /** Server time until which this credential is benched (it answered 401/403). */
  benchedUntil: number;
  /** Acquires sent to this lane and not yet answered, so a pool spreads a burst over its credentials. */
  demand: number;
}

/** KV key prefix of a pool credential's state. */
export function credentialKey(source: string, credential: string): string {
  return `${source}.c.${credential}`;
}

/** A new lane over `own` windows (plus those of `parent`, for a pool's credential). */
export function newLane(
  source: string,
  credential: string | null,
  own: readonly WindowGate[],
  parent: Lane | null,
  unlimited = false,
): Lane {
  const gates = [...own, ...(parent?.gates ?? [])].sort((a, b) => a.w.perMs - b.w.perMs);
  return {
    source,
    credential,
    key: credential === null ? source : credentialKey(source, credential),
    what: credential === null ? `source ${source}` : `source ${source}, credential ${credential}`,
    gates,
    own,
    parent,
    unlimited: unlimited || gates.length === 0,
    queue: [],
    busy: false,
    blockedUntil: 0,
    benchedUntil: 0,
    demand: 0,
  };
}

/** Server time until which the lane may not call: its own pause or its pool's. */
export function pausedUntil(lane: Lane): number {
  return Math.max(lane.blockedUntil, lane.parent?.blockedUntil ?? 0);
}

/** Local estimate of ms until the lane can admit a call at server time `now` (0 = now or unknown). */
export function laneWait(lane: Lane, now: number): number {
  const paused = Math.max(0, pausedUntil(lane) - now);
  if (lane.unlimited) return paused;
  return Math.max(paused, ...lane.gates.map((g) => g.waitHint(now)));
}

/** Local estimate of the calls the lane could still take at `now`, less those already headed to it. */
export function laneRoom(lane: Lane, now: number): number {
  const room = lane.unlimited ? Infinity : Math.min(...lane.gates.map((g) => g.roomHint(now)));
  return room - lane.demand;
}
