// Resource-aware admission: a replica takes a task that says what it needs (Machina-Resources)
// only when what it has free covers it. Free is the machine's capacity (configured, or measured
// by systeminformation) minus what the tasks it is running reserved.
import { availableParallelism, totalmem } from "node:os";
import { statfs } from "node:fs/promises";
import si from "systeminformation";
import { RESOURCE_KINDS, noResources, parseAmount } from "./resources";
import { within } from "./within";
import type { ResourceKind, Resources } from "./resources";

/** What {@link ResourceGate.take} decided. */
export type Admission = "taken" | "busy" | "never";

/** The `resources` settings: an amount per kind, "" to measure it. */
export type ResourceSettings = Record<ResourceKind, string>;

// RAM and disk in use by other processes change while a replica runs: measured again this often.
const MEASURE_EVERY_MS = 5_000;

/**
 * Tracks what a replica's running tasks reserved against its capacity. Admission is all or
 * nothing: a task is taken only when every kind it names fits in what is free now.
 */
export class ResourceGate {
  private readonly reserved = noResources();
  private measured: Partial<Resources> = {};
  private timer: NodeJS.Timeout | undefined;

  /**
   * `capacity`: the most of each kind this replica has. `measure`, when given, reports what is
   * free on the machine now for the kinds not configured (e.g. available RAM); it is polled and
   * caps what the gate admits.
   */
  constructor(
    readonly capacity: Resources,
    private readonly measure?: () => Promise<Partial<Resources>>,
  ) {}

  /** Starts polling the machine (when a measure was given); {@link stop} ends it. */
  async start(): Promise<void> {
    if (this.measure === undefined) return;
    const poll = async () => {
      this.measured = await this.measure!().catch(() => this.measured);
    };
    await poll();
    this.timer = setInterval(() => void poll(), MEASURE_EVERY_MS);
    this.timer.unref();
  }

  /** Stops polling. */
  stop(): void {
    clearInterval(this.timer);
  }

  /** Reserves `need` when it fits now ("taken"); "busy" when it fits only once running tasks end; "never" when it exceeds the capacity. */
  take(need: Partial<Resources>): Admission {
    let busy = false;
    for (const k of RESOURCE_KINDS) {
      const n = need[k] ?? 0;
      if (n <= 0) continue;
      if (n > this.capacity[k]) return "never";
      // What the machine reports free is taken as is, running tasks' reservations off it too:
      // a task may not have touched what it reserved yet.
      const free = Math.min(this.capacity[k], this.measured[k] ?? Infinity) - this.reserved[k];
      if (n > free) busy = true;
    }
    if (busy) return "busy";
    for (const k of RESOURCE_KINDS) this.reserved[k] += need[k] ?? 0;
    return "taken";
  }

  /** Gives back what a finished task reserved. */
  release(need: Partial<Resources>): void {
    for (const k of RESOURCE_KINDS) this.reserved[k] = Math.max(0, this.reserved[k] - (need[k] ?? 0));
  }

  /** What running tasks hold now. */
  inUse(): Resources {
    return { ...this.reserved };
  }
}

/**
 * The gate of one replica: each configured kind as written (BAD_REQUEST naming `resources.<kind>`
 * when it does not parse), the rest measured: CPU cores, total RAM (capped by available RAM as it
 * changes), GPUs systeminformation lists, free space of the filesystem of the working directory,
 * the fastest non-loopback interface's speed.
 */
export async function resourceGate(settings: ResourceSettings): Promise<ResourceGate> {
  const configured: Partial<Resources> = {};
  for (const k of RESOURCE_KINDS) {
    if (settings[k].trim() !== "") configured[k] = parseAmount(k, settings[k], `resources.${k}`);
  }
  const [graphics, nets, disk] = await Promise.all([
    configured.gpu === undefined ? within(2000, si.graphics(), null) : null,
    configured.network === undefined ? within(2000, si.networkInterfaces(), []) : [],
    configured.storage === undefined ? freeDisk() : 0,
  ]);
  const netList = Array.isArray(nets) ? nets : [nets];
  const capacity: Resources = {
    cpu: configured.cpu ?? availableParallelism(),
    ram: configured.ram ?? totalmem(),
    gpu: configured.gpu ?? (graphics?.controllers ?? []).length,
    storage: configured.storage ?? disk,
    // systeminformation gives Mbit/s.
    network:
      configured.network ??
      Math.max(0, ...netList.filter((n) => !n.internal && (n.speed ?? 0) > 0).map((n) => ((n.speed ?? 0) * 1e6) / 8)),
  };
  const measureRam = configured.ram === undefined;
  const measureDisk = configured.storage === undefined;
  const measure =
    measureRam || measureDisk
      ? async (): Promise<Partial<Resources>> => {
          const out: Partial<Resources> = {};
          if (measureRam) out.ram = (await si.mem()).available;
          if (measureDisk) out.storage = await freeDisk();
          return out;
        }
      : undefined;
  const gate = new ResourceGate(capacity, measure);
  await gate.start();
  return gate;
}

/**
 * Bytes available to this process on the filesystem holding the working directory. statfs is one
 * system call; systeminformation's fsSize runs `df` and reads the mounts with execSync, which
 * blocked every replica's event loop for tens of milliseconds at each poll.
 */
async function freeDisk(): Promise<number> {
  try {
    const s = await statfs(process.cwd());
    return s.bavail * s.bsize;
  } catch {
    return 0;
  }
}
