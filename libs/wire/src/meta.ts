import type { Meta } from "@machina/protos";

/** A Meta with every field at its zero value; `overrides` fill in what is known. */
export function makeMeta(overrides: Partial<Meta> = {}): Meta {
  return {
    start: 0,
    end: 0,
    requestTime: 0,
    sourceTime: 0,
    responseTime: 0,
    limiterUsage: 0,
    limiterQuota: 0,
    source: "",
    query: "",
    node: "",
    attempts: 0,
    pages: 0,
    ...overrides,
  };
}

/** Percent of quota used (`used / quota`); null when the quota is unknown or unlimited. */
export function percentQuota(used: number, quota: number): number | null {
  return quota > 0 && Number.isFinite(quota) ? used / quota : null;
}
