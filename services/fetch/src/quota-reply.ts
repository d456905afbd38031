// The fetch.quota / fetch.overquota reply: a limiter report on the wire. A pool's credentials
// appear by stable id only; the report holds no secret to leak.
import type { QuotaReply, QuotaWindow } from "@machina/protos";
import { isOverQuota, type QuotaReport, type WindowUsage } from "./limiter";

/** The reply for report `r`, with reset times as epoch ms from `now`. */
export function quotaReply(r: QuotaReport, now = Date.now()): QuotaReply {
  const window = (w: WindowUsage): QuotaWindow => ({
    perMs: w.perMs,
    usage: w.used,
    quota: w.limit,
    percent: w.percent,
    resetsAt: now + w.resetsInMs,
    align: w.align,
    ...(w.declared === undefined ? {} : { declared: w.declared }),
  });
  return {
    source: r.source,
    overQuota: isOverQuota(r),
    windows: r.windows.map(window),
    credentials: (r.credentials ?? []).map((c) => ({
      id: c.id,
      overQuota: c.benchedUntil !== null || c.blockedUntil !== null || c.windows.some((w) => w.used >= w.limit),
      windows: c.windows.map(window),
      ...(c.benchedUntil === null ? {} : { benchedUntil: c.benchedUntil }),
      ...(c.blockedUntil === null ? {} : { pausedUntil: c.blockedUntil }),
    })),
  };
}
