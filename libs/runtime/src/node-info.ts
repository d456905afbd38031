import { hostname } from "node:os";
import si from "systeminformation";
import type { NodeInfo } from "@machina/protos";
import { within } from "./within";

/** Describes this process and its machine for vertex (CPU, RAM, GPU, storage, network). */
export async function collectNodeInfo(base: {
  id: string;
  service: string;
  role: string;
  version: string;
}): Promise<NodeInfo> {
  const [cpu, mem, graphics, disks, nets] = await Promise.all([
    within(2000, si.cpu(), null),
    within(2000, si.mem(), null),
    within(2000, si.graphics(), null),
    within(2000, si.fsSize(), []),
    within(2000, si.networkInterfaces(), []),
  ]);
  const netList = Array.isArray(nets) ? nets : [nets];
  return {
    id: base.id,
    service: base.service,
    role: base.role,
    hostname: hostname(),
    pid: process.pid,
    cpuCores: cpu?.cores ?? 0,
    ramBytes: mem?.total ?? 0,
    gpus: (graphics?.controllers ?? []).map((c) => c.model).filter(Boolean),
    storageBytes: (disks ?? []).reduce((sum, d) => sum + (d.size ?? 0), 0),
    network: netList.filter((n) => !n.internal).map((n) => n.iface),
    startedAt: Date.now(),
    seenAt: Date.now(),
    version: base.version,
    configHead: "",
    owns: [],
    // Filled by each heartbeat (service-host startVertexLink).
    load1: 0,
    cpuPercent: 0,
    rssBytes: 0,
    uptimeMs: 0,
    handlerTimes: [],
  };
}
