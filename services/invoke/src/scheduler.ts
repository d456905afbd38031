import type { Logger } from "@machina/log";
import { setLongTimeout } from "@machina/runtime";
import type { LongTimeout } from "@machina/runtime";
import { currentTick, nextFireAt } from "./triggers";
import type { TriggerDef } from "./triggers";

/** Fires one tick of a trigger. */
export type FireTick = (trigger: TriggerDef, tick: number) => Promise<void>;

/**
 * Runs timer triggers on their grids and cron triggers at their cron times (manual ones only
 * fire through invoke.fire); returns a function that stops them. Run-on-start fires the tick at
 * or before the start (a timer's current grid point, a cron trigger's latest time); after each
 * fire the trigger is re-armed for its first tick strictly after both the clock and the tick
 * just fired, so no tick fires twice. Waits may exceed setTimeout's ~24.8-day limit (a monthly
 * trigger), hence long timeouts. `now` is the clock, injectable for tests.
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
    if (t.type === "manual") continue;
    let last = -Infinity;
    if (t.runOnStart) {
      last = currentTick(t, startedAt, startedAt);
      void run(t, last);
    }
    const arm = () => {
      if (stopped) return;
      // setTimeout may fire a millisecond early by the wall clock; never re-arm for a tick already fired.
      const at = nextFireAt(t, Math.max(now(), last), startedAt);
      if (at === null) {
        log.warn({ trigger: t.name }, "trigger has no next tick; it stops firing");
        return;
      }
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
