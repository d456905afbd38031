import type { MeshClient } from "@machina/runtime";
import type { MeshNames } from "@machina/subjects";
import { isMachinaError } from "@machina/wire";
import type { DashboardQuota } from "./dashboard-snapshot";

/**
 * Use of every rate window of every source, as `fetch.quota` reports it across all fetch
 * replicas. A mesh running no fetch service has no quotas to show, so no responder is an empty
 * list rather than a failure.
 */
export async function readFetchQuotas(
  client: MeshClient,
  names: MeshNames,
  timeoutMs: number,
): Promise<DashboardQuota[]> {
  let sources: string[];
  try {
    const reply = await client.request(names.fetch.sources, "Empty", {}, "SourcesReply", { timeoutMs });
    sources = reply.sources.map((s) => s.name);
  } catch (err) {
    if (isMachinaError(err) && err.code === "UNAVAILABLE") return [];
    throw err;
  }
  const reports = await Promise.all(
    sources.map((source) => client.request(names.fetch.quota, "QuotaRequest", { source }, "QuotaReply", { timeoutMs })),
  );
  return reports.flatMap((r) =>
    r.windows.map((w) => ({
      source: r.source,
      windowMs: Number(w.perMs),
      align: w.align,
      used: w.usage,
      quota: w.quota,
      percent: w.percent ?? (w.quota > 0 ? (100 * w.usage) / w.quota : 0),
    })),
  );
}
