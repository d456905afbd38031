import type { Logger } from "@machina/log";
import { setLongTimeout } from "@machina/runtime";
import type { LongTimeout } from "@machina/runtime";
import { currentTick, nextTick } from "./triggers";
import type { TriggerDef } from "./triggers";

/** Fires one tick of a trigger. */
export type FireTick = (trigger: TriggerDef, tick: number) => Promise<void>;

/**
 * Runs timer triggers on their grids; returns a function that stops them. Periods may exceed
 * setTimeout's ~24.8-day limit (a monthly trigger), hence long timeouts.
 */
export function startScheduler(
  triggers: TriggerDef[],
  fire: FireTick,
  log: Logger,
  now: () => number = Date.now,
): () => void {
  const startedAt = now();
  const timers = new Set<LongTimeout>();
  let stopped = false;

  const run = (t: TriggerDef, tick: number) =>
    fire(t, tick).catch((err: unknown) =>
      log.error({ err, trigger: t.name, tick }, "tick failed; the next tick retries the work"),
    );

  for (const t of triggers) {
    if (t.type !== "timer") continue;
    let last = -Infinity;
    if (t.runOnStart) {
      last = currentTick(t, startedAt, startedAt);
      void run(t, last);
    }
    const arm = () => {
      if (stopped) return;
      // setTimeout may fire a millisecond early by the wall clock; never re-arm for a tick already fired.
      const at = nextTick(t, Math.max(now(), last), startedAt);
      const timer = setLongTimeout(
        () => {
          timers.delete(timer);
          last = at;
          void run(t, at);
          arm();
        },
        Math.max(0, at - now()),
      );
      timers.add(timer);
    };
    arm();
  }
  return () => {
    stopped = true;
    for (const timer of timers) timer.cancel();
    timers.clear();
  };
}
