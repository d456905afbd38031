// Admission to one lane: its callers' grants, by compare-and-set on every window of the lane,
// scheduled on the server's clock so every replica's calls are ordered in the bucket.
import type { KV } from "@nats-io/kv";
import { MachinaError } from "@machina/wire";
import { formatDuration } from "@machina/config";
import type { ServerClock } from "./server-clock";
import type { Acquired } from "./limiter-types";
import type { Span, Taken } from "./window-gate";
import { blockedError, overQuota, unavailable } from "./limiter-errors";
import { pausedUntil, type Lane, type Waiter } from "./lane";

const MAX_ROUNDS = 20;
// Bounds one admission's loop whatever happens (each step is a KV read or write at most).
const MAX_STEPS = 200;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Tuning of {@link LaneAdmission}; see LimiterOptions for each. */
export interface AdmissionOptions {
  readonly maxBatch: number;
  readonly sendSlack: number;
  readonly spread: number;
  readonly maxWait: number;
}

/** Grants calls to lanes; one per limiter, shared by all its lanes. */
export class LaneAdmission {
  /** Grants confirmed too late to be used, and the calls they held. */
  late = 0;
  voided = 0;
  /** Compare-and-set rounds lost to another replica. */
  conflicts = 0;
  // Expected compare-and-set round trip (mean + 4 deviations), so a grant is scheduled for when it can be confirmed.
  private rttMean = 2;
  private rttDev = 1;

  constructor(
    private readonly kv: KV,
    private readonly clock: ServerClock,
    private readonly opts: AdmissionOptions,
  ) {}

  /** Queues one call for `s`, resolving when it may be sent. */
  enqueue(s: Lane): Promise<Acquired> {
    return new Promise<Acquired>((resolve, reject) => {
      s.queue.push({ resolve, reject });
      void this.pump(s);
    });
  }

  // Local callers of one lane are served one batch at a time: a batch of n waiters costs one
  // compare-and-set per window instead of n racing ones that would mostly conflict.
  private async pump(s: Lane): Promise<void> {
    if (s.busy) return;
    s.busy = true;
    try {
      while (s.queue.length > 0) {
        const batch = s.queue.splice(0, this.opts.maxBatch);
        try {
          const { granted, acquired, refusal, send } = await this.admit(s, batch.length);
          const won = batch.slice(0, granted);
          s.queue.unshift(...batch.slice(granted));
          if (refusal !== null) for (const w of s.queue.splice(0)) w.reject(refusal);
          // The next batch is admitted while this one waits for its send time: one lane's
          // admissions are bounded by KV round trips, not by timer sleeps.
          if (won.length > 0) this.release(s, won, acquired, send);
        } catch (err) {
          const e = err instanceof MachinaError ? err : unavailable(this.kv, s.source, err);
          for (const w of [...batch, ...s.queue.splice(0)]) w.reject(e);
        }
      }
    } finally {
      s.busy = false;
    }
  }

  // Lets granted waiters go at their send time; a grant that fires past its slack is void (it
  // stays counted) and its waiters queue again for a new one.
  private release(s: Lane, won: Waiter[], acquired: Acquired[], send: number): void {
    const fire = () => {
      if (this.clock.local() > send + this.opts.sendSlack) {
        this.late++;
        this.voided += won.length;
        s.queue.unshift(...won);
        void this.pump(s);
        return;
      }
      won.forEach((w, i) => w.resolve(acquired[i]));
    };
    const wait = send - this.clock.local();
    if (wait <= 0) fire();
    else setTimeout(fire, wait);
  }

  // Grants up to n calls, scheduled for when the KV write can be confirmed, on the server's
  // clock. Returns what was granted and its local send time, or a refusal for all waiters.
  private async admit(
    s: Lane,
    n: number,
  ): Promise<{ granted: number; acquired: Acquired[]; refusal: MachinaError | null; send: number }> {
    if (!this.clock.ready()) await this.clock.probe();
    const first = this.clock.local();
    let notBefore = 0;
    let fresh = false;
    // Waiting for room or a pause is progress; only lost races and void grants count as lost rounds.
    let lost = 0;
    for (let step = 0; lost < MAX_ROUNDS && step < MAX_STEPS; step++) {
      const t0 = this.clock.local();
      // A fast KV confirms well inside the send slack: send at once. A slow one gets the call
      // scheduled for when its confirmation is expected instead of every grant going void.
      const rtt = this.expectedRtt();
      const send = Math.max(t0 + (rtt < this.opts.sendSlack / 2 ? 0 : rtt), notBefore);
      const off = this.clock.bounds(send);
      const span: Span = { lb: send + off.low, ub: send + off.high + this.opts.sendSlack + this.opts.spread };
      const nowLow = t0 + off.low;
      const paused = pausedUntil(s);
      if (paused > span.lb) {
        const at = send + (paused - span.lb);
        if (at - first > this.opts.maxWait)
          return { granted: 0, acquired: [], refusal: blockedError(s, paused, paused - nowLow), send };
        notBefore = at;
        continue;
      }
      const rooms = await Promise.all(s.gates.map((g) => g.room(span, n, fresh)));
      const g = Math.min(n, ...rooms);
      if (g <= 0) {
        // A cached view may be stale after another replica gave calls back: confirm before waiting.
        if (!fresh) {
          fresh = true;
          continue;
        }
        const earliest = Math.max(...s.gates.map((gate, i) => (rooms[i] > 0 ? -Infinity : gate.earliest(span))));
        const at = send + Math.max(1, earliest - span.lb);
        if (!Number.isFinite(earliest) || at - first > this.opts.maxWait) {
          const full = s.gates[rooms.findIndex((r) => r <= 0)];
          return {
            granted: 0,
            acquired: [],
            refusal: overQuota(s, full, Math.max(1, earliest - nowLow), span.lb),
            send,
          };
        }
        // Wait for the slot instead of reserving it ahead: a call still in flight may yet move
        // its record later (settle), and a reservation made now could not see that.
        const ahead = rtt < this.opts.sendSlack / 2 ? 0 : rtt;
        await sleep(Math.max(1, at - ahead - this.clock.local()));
        notBefore = at;
        fresh = true;
        continue;
      }
      const taken = await this.takeAll(s, span, g, nowLow);
      if (taken === null) {
        this.conflicts++;
        lost++;
        fresh = true;
        continue;
      }
      const acquired = await this.describe(s, span, g);
      const t1 = this.clock.local();
      this.observeRtt(t1 - t0);
      if (t1 > send + this.opts.sendSlack) {
        // Confirmed too late to go out inside its span: it stays counted (safe) and is not used.
        this.late++;
        this.voided += g;
        lost++;
        notBefore = 0;
        continue;
      }
      return { granted: g, acquired, refusal: null, send };
    }
    throw new MachinaError(
      "UNAVAILABLE",
      `limiter for ${s.what} lost ${MAX_ROUNDS} rounds in a row (compare-and-set conflicts or a KV slower than its round-trip estimate); lower the replica count or raise maxBatch`,
      { details: { source: s.source, dependency: "nats-kv" } },
    );
  }

  private async takeAll(s: Lane, span: Span, g: number, now: number): Promise<Taken[] | null> {
    const taken: Taken[] = [];
    for (const gate of s.gates) {
      const t = await gate.take(span, g, now);
      if (t === null) {
        // Another replica wrote first: give back what this round took so no window stays spent.
        await Promise.all(taken.map((x) => x.undo()));
        return null;
      }
      taken.push(t);
    }
    return taken;
  }

  // Each waiter of a granted batch sees the count including itself, as if admitted alone.
  private async describe(s: Lane, span: Span, g: number): Promise<Acquired[]> {
    const tight = s.gates[0];
    const limit = tight.limitAt(span.lb);
    const used = Math.max(g, limit - (await tight.room(span, limit, false)));
    return Array.from({ length: g }, (_, i) => {
      const usage = used - g + i + 1;
      return {
        usage,
        quota: limit,
        percent: usage / limit,
        window: formatDuration(tight.w.perMs),
        windowStart: Math.round(span.lb - tight.w.perMs),
        latest: span.ub,
      };
    });
  }

  private expectedRtt(): number {
    return Math.ceil(this.rttMean + 4 * this.rttDev) + 1;
  }

  private observeRtt(ms: number): void {
    const err = ms - this.rttMean;
    this.rttMean += err / 8;
    this.rttDev += (Math.abs(err) - this.rttDev) / 4;
  }
}
