import type { Logger } from "@machina/log";
import { setLongTimeout } from "@machina/runtime";
import type { LongTimeout } from "@machina/runtime";
import { currentTick, nextFireAt } from "./triggers";
import type { TriggerDef } from "./triggers";

/** Fires one tick of a trigger. */
export type FireTick = (trigger: TriggerDef, tick: number) => Promise<void>;

/** One scheduled trigger: its definition, the tick it fired last and the timer for the next. */
interface Armed {
  def: TriggerDef;
  /** What decides its times; a new definition with the same one keeps the timer. */
  grid: string;
  last: number;
  /** When the timer fires; null when the trigger has no next tick. */
  at: number | null;
  timer: LongTimeout | null;
}

// The fields that decide when a trigger fires (query sets and run_on_start do not).
function gridOf(t: TriggerDef): string {
  return JSON.stringify([t.type, t.durationMs, t.cron, t.timezone, t.quantize, t.offsetMs]);
}

/**
 * Runs timer triggers on their grids and cron triggers at their cron times (manual ones only
 * fire through invoke.fire). Run-on-start fires the tick at or before the start (a timer's
 * current grid point, a cron trigger's latest time); after each fire the trigger is re-armed for
 * its first tick strictly after both the clock and the tick just fired, so no tick fires twice.
 * Waits may exceed setTimeout's ~24.8-day limit (a monthly trigger), hence long timeouts. `now`
 * is the clock, injectable for tests.
 *
 * {@link update} takes a new set of triggers while it runs (a config head applied live): a
 * trigger whose schedule changed is re-armed on its new one, a new trigger starts as at start
 * (run-on-start included), a removed one stops; ticks already firing are left to finish.
 */
export class Scheduler {
  private readonly armed = new Map<string, Armed>();
  private readonly startedAt: number;
  private stopped = false;

  constructor(
    private readonly fire: FireTick,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.startedAt = now();
  }

  /** When the scheduler fires `name` next (epoch ms); null when it does not schedule it. */
  nextFire(name: string): number | null {
    return this.armed.get(name)?.at ?? null;
  }

  /** Schedules exactly `triggers` from now on (see the class comment); the first call starts them. */
  update(triggers: readonly TriggerDef[]): void {
    if (this.stopped) return;
    const scheduled = new Map(triggers.filter((t) => t.type !== "manual").map((t) => [t.name, t]));
    for (const [name, a] of this.armed) {
      if (scheduled.has(name)) continue;
      a.timer?.cancel();
      this.armed.delete(name);
      this.log.info({ trigger: name }, "trigger no longer scheduled");
    }
    for (const t of scheduled.values()) {
      const a = this.armed.get(t.name);
      if (a === undefined) {
        this.begin(t);
        continue;
      }
      const grid = gridOf(t);
      // The timer's callback reads `def`, so a new query set list fires with the next tick.
      a.def = t;
      if (a.grid === grid) continue;
      a.grid = grid;
      a.timer?.cancel();
      this.arm(a);
      this.log.info({ trigger: t.name, nextFire: a.at }, "trigger rescheduled");
    }
  }

  /** Stops every timer; ticks already firing finish on their own. */
  stop(): void {
    this.stopped = true;
    for (const a of this.armed.values()) a.timer?.cancel();
    this.armed.clear();
  }

  private begin(t: TriggerDef): void {
    const a: Armed = { def: t, grid: gridOf(t), last: -Infinity, at: null, timer: null };
    this.armed.set(t.name, a);
    if (t.runOnStart) {
      a.last = currentTick(t, this.now(), this.startedAt);
      void this.run(t, a.last);
    }
    this.arm(a);
  }

  private arm(a: Armed): void {
    // setTimeout may fire a millisecond early by the wall clock; never re-arm for a tick already fired.
    const at = nextFireAt(a.def, Math.max(this.now(), a.last), this.startedAt);
    a.at = at;
    a.timer = null;
    if (at === null) {
      this.log.warn({ trigger: a.def.name }, "trigger has no next tick; it stops firing");
      return;
    }
    const timer = setLongTimeout(
      () => {
        // Cancelled timers never call back; this only guards against a bug arming two.
        if (this.stopped || a.timer !== timer || this.armed.get(a.def.name) !== a) return;
        a.last = at;
        void this.run(a.def, at);
        this.arm(a);
      },
      Math.max(0, at - this.now()),
    );
    a.timer = timer;
  }

  private run(t: TriggerDef, tick: number): Promise<void> {
    return this.fire(t, tick).catch((err: unknown) =>
      this.log.error({ err, trigger: t.name, tick }, "tick failed; the next tick retries the work"),
    );
  }
}

/** Starts a {@link Scheduler} on `triggers`; returns a function that stops it. */
export function startScheduler(
  triggers: TriggerDef[],
  fire: FireTick,
  log: Logger,
  now: () => number = Date.now,
): () => void {
  const s = new Scheduler(fire, log, now);
  s.update(triggers);
  return () => s.stop();
}
