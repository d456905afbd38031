/**
 * Longest delay `setTimeout` honours (2^31-1 ms, about 24.8 days). Node fires a longer one
 * after 1 ms with a TimeoutOverflowWarning, so a monthly trigger would fire in a tight loop.
 */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** A pending {@link setLongTimeout}. */
export interface LongTimeout {
  /** Stops it; harmless after it fired or when called twice. */
  cancel(): void;
}

/**
 * `setTimeout` for any delay: a delay past {@link MAX_TIMER_DELAY_MS} is waited out in chunks
 * of at most that length, chained until the whole delay has passed, then `callback` runs once.
 * A delay of 0 or less runs it on the next timer turn, as `setTimeout` does.
 *
 * The chunks count the delay down rather than re-reading a clock, so the timer keeps
 * setTimeout's own (monotonic) time base and works under mocked timers; each chunk may add
 * setTimeout's usual lateness of a few ms, which over a chunk of weeks is negligible.
 *
 * @throws RangeError when `delayMs` is NaN or infinite (a bug in the caller, not a long wait).
 */
export function setLongTimeout(callback: () => void, delayMs: number): LongTimeout {
  if (!Number.isFinite(delayMs)) throw new RangeError(`setLongTimeout needs a finite delay, got ${delayMs}`);
  let remaining = Math.max(0, delayMs);
  let timer: ReturnType<typeof setTimeout> | null = null;
  const step = () => {
    const chunk = Math.min(remaining, MAX_TIMER_DELAY_MS);
    remaining -= chunk;
    timer = setTimeout(() => {
      if (remaining > 0) step();
      else {
        timer = null;
        callback();
      }
    }, chunk);
  };
  step();
  return {
    cancel() {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      remaining = 0;
    },
  };
}
