// The quota report of a source, or of a pooled source and each of its credentials.
import { formatDuration } from "@machina/config";
import type { Pool } from "./credential-pool";
import { pausedUntil, type Lane } from "./lane";
import type { CredentialQuota, QuotaReport, WindowUsage } from "./limiter-types";
import type { WindowGate } from "./window-gate";

/** One window's usage at server time `now`, read fresh. */
export async function gateUsage(g: WindowGate, now: number): Promise<WindowUsage> {
  const u = await g.usage(now);
  const limit = g.limitAt(now);
  return {
    window: formatDuration(g.w.perMs),
    perMs: g.w.perMs,
    limit,
    align: g.w.align,
    ...(limit < g.w.limit ? { declared: g.w.limit } : {}),
    used: u.used,
    percent: u.used / limit,
    windowStart: Math.round(u.windowStart),
    resetsInMs: Math.max(0, Math.round(u.resetsAt - now)),
  };
}

const fullest = (windows: readonly WindowUsage[]) => windows.reduce((a, b) => (b.percent > a.percent ? b : a));
const until = (t: number, now: number) => (t > now ? Math.round(t) : null);

/** The report of a source without a pool. */
export async function laneReport(lane: Lane, now: number): Promise<QuotaReport> {
  const source = lane.source;
  const blockedUntil = until(lane.blockedUntil, now);
  if (lane.unlimited)
    return { source, unlimited: true, usage: null, quota: null, percent: null, windows: [], blockedUntil };
  const windows = await Promise.all(lane.gates.map((g) => gateUsage(g, now)));
  const tight = fullest(windows);
  return {
    source,
    unlimited: false,
    usage: tight.used,
    quota: tight.limit,
    percent: tight.percent,
    windows,
    blockedUntil,
  };
}

async function credentialReport(lane: Lane, now: number): Promise<CredentialQuota> {
  const windows = await Promise.all(lane.own.map((g) => gateUsage(g, now)));
  const tight = windows.length === 0 ? null : fullest(windows);
  return {
    id: lane.credential as string,
    usage: tight?.used ?? null,
    quota: tight?.limit ?? null,
    percent: tight?.percent ?? null,
    windows,
    benchedUntil: until(lane.benchedUntil, now),
    blockedUntil: until(lane.blockedUntil, now),
  };
}

/** The report of a pooled source: its shared windows, and each credential by id. */
export async function poolReport(pool: Pool, now: number): Promise<QuotaReport> {
  const windows = await Promise.all(pool.parent.gates.map((g) => gateUsage(g, now)));
  const credentials = await Promise.all(pool.lanes.map((l) => credentialReport(l, now)));
  const usable = credentials.filter((c) => c.benchedUntil === null && c.blockedUntil === null);
  // The pool can take a call while its emptiest credential can, and its shared windows too.
  const best = usable.reduce<CredentialQuota | null>(
    (a, b) => (a === null || (b.percent ?? 0) < (a.percent ?? 0) ? b : a),
    null,
  );
  const shared = windows.length === 0 ? null : fullest(windows);
  const unlimited = pool.parent.unlimited && pool.windows.length === 0;
  const pick =
    shared !== null && (best === null || shared.percent >= (best.percent ?? 0))
      ? { usage: shared.used, quota: shared.limit, percent: shared.percent }
      : best !== null
        ? { usage: best.usage, quota: best.quota, percent: best.percent }
        : { usage: null, quota: null, percent: unlimited ? null : 1 };
  return {
    source: pool.source,
    unlimited,
    ...pick,
    windows,
    blockedUntil: until(pausedUntil(pool.parent), now),
    credentials,
  };
}

/** True when the source can take no call now: paused, a window full, or every credential of its pool unusable. */
export function isOverQuota(r: QuotaReport): boolean {
  const full = (windows: readonly WindowUsage[]) => windows.some((w) => w.used >= w.limit);
  if (r.blockedUntil !== null || full(r.windows)) return true;
  if (r.credentials === undefined) return false;
  return r.credentials.every((c) => c.benchedUntil !== null || c.blockedUntil !== null || full(c.windows));
}
