/** Header to which each hop appends its own handler time, like HTTP's Server-Timing. */
export const TIMING_HEADER = "Machina-Timing";
/** Alpha's sender header: which node sent a message. */
export const SENDER_HEADER = "Machina-Sender";
/** Carries a dead letter's error code, so `nats stream get` shows why it was parked. */
export const DEAD_LETTER_ERROR_HEADER = "Machina-Error-Code";
/** Alpha's resources header: what a task needs (RAM, CPU, GPU, storage, network). */
export const RESOURCES_HEADER = "Machina-Resources";

/** One hop's recorded time. */
export interface TimingEntry {
  hop: string;
  ms: number;
}

/** Appends `hop;dur=<ms>` to an existing Machina-Timing value. */
export function appendTiming(existing: string | undefined, hop: string, ms: number): string {
  const entry = `${safeHop(hop)};dur=${ms.toFixed(2)}`;
  return existing ? `${existing}, ${entry}` : entry;
}

// A process appends the same hop name to every reply: remember the last one made safe.
let lastHop = "";
let lastSafeHop = "";
function safeHop(hop: string): string {
  if (hop !== lastHop) {
    lastSafeHop = hop.replace(/[^A-Za-z0-9._-]/g, "_");
    lastHop = hop;
  }
  return lastSafeHop;
}

/** Parses a Machina-Timing value into entries; ignores malformed parts. */
export function parseTiming(value: string | undefined): TimingEntry[] {
  if (!value) return [];
  const out: TimingEntry[] = [];
  for (const part of value.split(",")) {
    const m = /^\s*([^;\s]+);dur=([0-9.]+)\s*$/.exec(part);
    if (m) out.push({ hop: m[1], ms: Number(m[2]) });
  }
  return out;
}
