// A source's credential pool in the limiter: one lane per credential, each with the source's
// declared windows, plus the pool's own lane holding the windows all credentials share.
import { MachinaError } from "@machina/wire";
import { laneRoom, laneWait, type Lane } from "./lane";
import type { RateWindow } from "../source";

/** The lanes of one pooled source. */
export interface Pool {
  readonly source: string;
  /** Source-wide windows and pauses; never admitted to directly. */
  readonly parent: Lane;
  /** One per credential, in the order the credentials were declared. */
  lanes: Lane[];
  readonly byId: Map<string, Lane>;
  /** The windows each credential has to itself (the source's declared ones). */
  readonly windows: readonly RateWindow[];
  readonly benchMs: number;
  /** Where the round-robin among equally good credentials continues. */
  next: number;
}

// Ids become KV key tokens: what config names and short hashes are made of.
const ID = /^[a-z0-9_]{1,64}$/;

/** Checks credential ids handed to the limiter; throws BAD_REQUEST naming the bad one. */
export function checkCredentialIds(source: string, ids: readonly string[]): void {
  const bad = (why: string) =>
    new MachinaError("BAD_REQUEST", `credential pool of source ${source}: ${why}`, {
      retryable: false,
      details: { source },
    });
  if (ids.length === 0) throw bad("has no credentials; declare at least one under pool");
  const seen = new Set<string>();
  for (const id of ids) {
    if (!ID.test(id)) throw bad(`credential id "${id}" must be 1 to 64 lower-case letters, digits or '_'`);
    if (seen.has(id)) throw bad(`credential id "${id}" is given twice`);
    seen.add(id);
  }
}

/**
 * The credentials worth trying at server time `now`, best first: not benched; then the soonest
 * to have room; then the most room left (less the calls already headed there, so a burst
 * spreads); ties taken round-robin. Advances the round-robin.
 */
export function pickOrder(pool: Pool, now: number): Lane[] {
  const n = pool.lanes.length;
  const scored = pool.lanes
    .map((lane, i) => ({ lane, wait: laneWait(lane, now), room: laneRoom(lane, now), turn: (i - pool.next + n) % n }))
    .filter((x) => x.lane.benchedUntil <= now);
  scored.sort((a, b) => a.wait - b.wait || b.room - a.room || a.turn - b.turn);
  if (scored.length > 0) pool.next = (pool.lanes.indexOf(scored[0].lane) + 1) % n;
  return scored.map((x) => x.lane);
}

/** UPSTREAM when every credential of the pool is benched: retried once the first bench ends. */
export function allBenched(pool: Pool, now: number): MachinaError {
  const first = Math.min(...pool.lanes.map((l) => l.benchedUntil));
  const ms = Math.max(1, Math.ceil(first - now));
  const ids = pool.lanes.map((l) => l.credential as string);
  return new MachinaError(
    "UPSTREAM",
    `every credential of source ${pool.source} (${ids.join(", ")}) is benched after the upstream refused it (HTTP 401/403); fix or replace them in the source's pool; the first is tried again in ${ms} ms`,
    { retryable: true, details: { source: pool.source, credentials: ids, retryAfterMs: ms } },
  );
}

/** OVER_QUOTA when no credential of the pool can take a call soon enough: the soonest refusal, said of the pool. */
export function poolOverQuota(pool: Pool, refusals: readonly MachinaError[]): MachinaError {
  const soonest = refusals.reduce((a, b) =>
    Number(b.details.retryAfterMs ?? Infinity) < Number(a.details.retryAfterMs ?? Infinity) ? b : a,
  );
  const ms = Number(soonest.details.retryAfterMs ?? 1_000);
  const usable = refusals.length;
  return new MachinaError(
    "OVER_QUOTA",
    `source ${pool.source} is over quota on all ${usable} usable credential${usable === 1 ? "" : "s"} of its pool; retry in ${ms} ms (soonest: ${soonest.message})`,
    { retryable: true, details: { ...soonest.details, source: pool.source, retryAfterMs: ms } },
  );
}
