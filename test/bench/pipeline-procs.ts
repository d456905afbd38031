// Process helpers of the pipeline bench: CPU seconds from /proc and the servers' pids from the
// harness pid files.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { meshNames, type MeshNames } from "@machina/subjects";
import { uniquePrefix } from "../support/nats-env";

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** User + system CPU seconds of process `pid` (every thread), or undefined when it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the parenthesised command name (which may hold spaces): state is field 3.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / clockTicks();
  } catch {
    return undefined;
  }
}

/** The pid a harness script recorded in $MACHINA_STATE/run/<name>.pid, if that process runs. */
export function harnessPid(name: "nats" | "cassandra"): number | undefined {
  const state = process.env.MACHINA_STATE;
  if (!state) return undefined;
  try {
    const pid = Number(readFileSync(path.join(state, "run", `${name}.pid`), "utf8").trim());
    return Number.isInteger(pid) && cpuSeconds(pid) !== undefined ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The names and server pids a bench run works with, under a fresh mesh prefix. */
export interface BenchRun {
  prefix: string;
  names: MeshNames;
  /** Keyspace of the services under test. */
  keyspace: string;
  /** Keyspace of the raw baseline. */
  rawKeyspace: string;
  natsPid: number | undefined;
  cassandraPid: number | undefined;
}

/** A fresh prefix with its names and keyspaces; `note` hears it when the Cassandra pid is unknown. */
export function benchRun(tag: string, cqlPort: number, note: (line: string) => void): BenchRun {
  const prefix = uniquePrefix(tag);
  const run = {
    prefix,
    names: meshNames(prefix),
    keyspace: `${prefix}_ks`,
    rawKeyspace: `${prefix}_raw`,
    natsPid: harnessPid("nats"),
    cassandraPid: harnessPid("cassandra"),
  };
  if (run.cassandraPid === undefined)
    note(`no Cassandra pid in $MACHINA_STATE/run; run through test/harness/run-bench.sh (CQL port ${cqlPort})`);
  return run;
}

/** CPU seconds of named processes between two points in time. */
export class CpuMeter {
  private readonly start = new Map<string, number>();
  private readonly pids = new Map<string, number | "self">();

  constructor(pids: Record<string, number | "self" | undefined>) {
    for (const [name, pid] of Object.entries(pids)) if (pid !== undefined) this.pids.set(name, pid);
    for (const [name, pid] of this.pids) this.start.set(name, read(pid) ?? 0);
  }

  /** Adds a process started after the meter was made; it counts from now. */
  add(name: string, pid: number | undefined): void {
    if (pid === undefined) return;
    this.pids.set(name, pid);
    this.start.set(name, read(pid) ?? 0);
  }

  /** Seconds used by each process since the meter was made (missing when a process is gone). */
  used(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [name, pid] of this.pids) {
      const now = read(pid);
      if (now !== undefined) out.set(name, now - (this.start.get(name) ?? 0));
    }
    return out;
  }
}

function read(pid: number | "self"): number | undefined {
  if (pid === "self") {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  }
  return cpuSeconds(pid);
}
