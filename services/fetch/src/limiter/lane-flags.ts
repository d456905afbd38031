// The limiter bucket's per-lane flags, which every replica watches: `<lane>.blocked` (an upstream
// pause, until a server time), `<lane>.bench` (a refused credential, until a server time) and
// `<lane>.limits` (limits an upstream lowered, per window length). A lane is a source, or
// `<source>.c.<credential>` for one credential of a pool. Source names hold no dots, so the two
// shapes never collide.
import type { KV } from "@nats-io/kv";
import type { Lowering } from "./lowered-limit";

/** The flags a lane may carry. */
export type LaneFlag = "blocked" | "bench" | "limits";

const FLAGS: readonly LaneFlag[] = ["blocked", "bench", "limits"];

/** Key patterns every replica watches: flags of sources and of pool credentials. */
export const FLAG_WATCH_KEYS: readonly string[] = [
  "*.blocked",
  "*.limits",
  "*.c.*.blocked",
  "*.c.*.bench",
  "*.c.*.limits",
];

/** The bucket key of `flag` of the lane with key prefix `lane`. */
export function flagKey(lane: string, flag: LaneFlag): string {
  return `${lane}.${flag}`;
}

/** Splits a watched key into its lane prefix and flag; null for any other key. */
export function parseFlagKey(key: string): { lane: string; flag: LaneFlag } | null {
  const dot = key.lastIndexOf(".");
  const flag = key.slice(dot + 1) as LaneFlag;
  return dot > 0 && FLAGS.includes(flag) ? { lane: key.slice(0, dot), flag } : null;
}

/** Lowered limits by window length (ms), as stored under `<lane>.limits`. */
export type SharedLimits = Readonly<Record<string, Lowering>>;

/** Reads a `limits` value; anything unreadable is read as no lowering (the declared limits hold). */
export function decodeLimits(text: string): SharedLimits {
  try {
    const v = JSON.parse(text) as unknown;
    if (v === null || typeof v !== "object" || Array.isArray(v)) return {};
    const out: Record<string, Lowering> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      const { limit, from, until } = (x ?? {}) as { limit?: unknown; from?: unknown; until?: unknown };
      if (Number.isSafeInteger(limit) && Number.isFinite(from) && Number.isFinite(until))
        out[k] = { limit: limit as number, from: from as number, until: until as number };
    }
    return out;
  } catch {
    return {};
  }
}

/** Writes `until` (a server time) under `key` unless a later one is there; by compare-and-set. */
export async function raiseUntil(kv: KV, key: string, until: number): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const e = await kv.get(key);
    const old = e !== null && e.operation === "PUT" ? Number(e.string()) : 0;
    if (old >= until) return;
    try {
      if (e === null) await kv.create(key, String(Math.ceil(until)));
      else await kv.update(key, String(Math.ceil(until)), e.revision);
      return;
    } catch {
      // lost a race with another replica's write; read again
    }
  }
}

/**
 * Merges `changes` (window length → lowering, or null to drop it) into `key`, dropping
 * lowerings that ended before `now`; by compare-and-set, so no replica's entry is lost.
 */
export async function mergeLimits(
  kv: KV,
  key: string,
  changes: ReadonlyMap<number, Lowering | null>,
  now: number,
): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const e = await kv.get(key);
    const old = e !== null && e.operation === "PUT" ? decodeLimits(e.string()) : {};
    const next: Record<string, Lowering> = {};
    for (const [k, x] of Object.entries(old)) if (x.until > now) next[k] = x;
    for (const [perMs, x] of changes) {
      if (x === null) delete next[String(perMs)];
      else next[String(perMs)] = { limit: x.limit, from: Math.floor(x.from), until: Math.ceil(x.until) };
    }
    try {
      if (e === null) await kv.create(key, JSON.stringify(next));
      else await kv.update(key, JSON.stringify(next), e.revision);
      return;
    } catch {
      // another replica wrote meanwhile; merge into its value
    }
  }
}
