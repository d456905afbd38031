// How one upstream answer corrects a lane's windows. Every correction only lowers what is
// admitted: a pause, a count the upstream holds that the windows had not seen, or a limit below
// the declared one. Nothing an upstream says raises a window above its declared limit.
import type { UpstreamQuota, UpstreamQuotaView } from "../http";
import type { WindowGate } from "./window-gate";

/** What one answer asks of a lane's windows; times are on the server's clock. */
export interface Reconciliation {
  /** Until when the lane must not call; null for no pause. */
  pauseUntil: number | null;
  /** Counts to hold: at most `remaining` more calls in `gate` before `until` (which may be `slack` early). */
  readonly floors: {
    readonly gate: WindowGate;
    readonly remaining: number;
    readonly until: number;
    readonly slack: number;
  }[];
  /**
   * The limit each window should have from server time `from`: below its declared one, or null
   * for the declared one.
   */
  readonly limits: Map<WindowGate, { readonly limit: number | null; readonly from: number }>;
}

/**
 * Plans the corrections for an answer with `status` and quota headers `view`, given the lane's
 * own windows (`gates`, shortest first) and the server time `now`; `toServer` maps the
 * headers' epoch times onto the server's clock.
 */
export function planReconcile(
  gates: readonly WindowGate[],
  status: number,
  view: UpstreamQuotaView,
  now: number,
  toServer: (epochMs: number) => number,
): Reconciliation {
  const plan: Reconciliation = { pauseUntil: null, floors: [], limits: new Map() };
  const pause = (until: number) => {
    if (until > now) plan.pauseUntil = Math.max(plan.pauseUntil ?? 0, until);
  };
  if (view.retryAt !== null) pause(toServer(view.retryAt));
  // A 429 without Retry-After: assume the upstream counts like the shortest window.
  else if (status === 429) pause(now + (gates.length > 0 ? gates[0].w.perMs : 1_000));
  for (const q of view.quotas) {
    const resetIn = q.resetAt === null ? null : Math.max(0, toServer(q.resetAt) - now);
    // Whole-second resets are rounded: the window may end up to that much sooner.
    const slack = q.resetAt === null ? 0 : q.resetPrecisionMs;
    // With a count left until the reset, that count rules the current window (calls we spent
    // but never sent do not make it smaller); the lower limit rules from the reset on.
    const from = q.remaining !== null && resetIn !== null ? now + resetIn : now;
    if (q.limit !== null) for (const g of limitTargets(gates, q, resetIn, slack)) lowerTo(plan, g, q.limit, from);
    if (q.remaining === null) continue;
    // "None left" without a reset lasts, at least, the window it names or the shortest one.
    const span = resetIn ?? (q.remaining === 0 ? (q.windowMs ?? gates[0]?.w.perMs ?? 1_000) : null);
    if (span === null || span <= 0) continue;
    const gate = countTarget(gates, q, span - slack);
    if (gate !== null) plan.floors.push({ gate, remaining: q.remaining, until: now + span, slack });
    // No window is long enough to hold the count until the reset: when none are left, the whole lane waits.
    else if (q.remaining === 0) pause(now + span);
    else {
      const longest = gates[gates.length - 1];
      if (longest !== undefined) plan.floors.push({ gate: longest, remaining: q.remaining, until: now + span, slack });
    }
  }
  // A window no header spoke of keeps whatever it had: lowerings lapse on their own.
  return plan;
}

function lowerTo(plan: Reconciliation, g: WindowGate, limit: number, from: number): void {
  const want = limit < g.w.limit ? limit : null;
  const had = plan.limits.get(g);
  // Two statements about one window: the lower wins.
  if (had === undefined || (want !== null && (had.limit === null || want < had.limit)))
    plan.limits.set(g, { limit: want, from });
}

/**
 * The windows a stated limit bounds. A policy with a window length (q calls per w) bounds every
 * window no longer than w, since each such interval lies inside one of length w. Without a
 * length, the limit is taken as the window its reset falls in: the shortest one at least that
 * long (all of them when the reset lies past them all: the upstream's window is longer), or the
 * shortest window when no reset is given.
 */
function limitTargets(
  gates: readonly WindowGate[],
  q: UpstreamQuota,
  resetIn: number | null,
  slack: number,
): WindowGate[] {
  if (q.windowMs !== null) return gates.filter((g) => g.w.perMs <= (q.windowMs as number));
  if (resetIn === null) return gates.slice(0, 1);
  const fit = gates.find((g) => g.w.perMs >= resetIn - slack);
  return fit === undefined ? [...gates] : [fit];
}

// The window that can hold "at most r more until the reset": one at least as long as the time
// to the reset, so the calls it counts from now still count then; the stated window if it is one.
function countTarget(gates: readonly WindowGate[], q: UpstreamQuota, span: number): WindowGate | null {
  const fits = gates.filter((g) => g.w.perMs >= span);
  return fits.find((g) => g.w.perMs === q.windowMs) ?? fits[0] ?? null;
}
