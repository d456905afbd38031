import type { HeaderBag } from "../http";
import type { LimiterSpec, RateWindow } from "../source";
import type { LocalClock } from "./server-clock";

/** What the limiter needs to know about a source (a SourceDef fits). */
export interface LimitedSource {
  readonly name: string;
  readonly limiter: LimiterSpec;
  /**
   * A credential pool: the declared windows then hold per credential, `windows` for all of them
   * together, and a credential refused with 401/403 rests `benchMs`. Null or absent: no pool.
   */
  readonly pool?: { readonly windows: readonly RateWindow[]; readonly benchMs: number } | null;
}

/** Where the limiter says what operators must know (a benched credential); pino's logger fits. */
export interface LimiterLog {
  warn(fields: Record<string, unknown>, message: string): void;
}

/** Options of {@link openLimiter}. */
export interface LimiterOptions {
  /** KV bucket holding the shared state; every replica of one network must use the same name. */
  readonly bucket: string;
  /** Replicas of the bucket when this creates it (R3 on a 3-node JetStream cluster). Default 1. */
  readonly replicas?: number;
  readonly sources: readonly LimitedSource[];
  /** Most concurrent local acquires of one source admitted by a single compare-and-set. Default 64. */
  readonly maxBatch?: number;
  /**
   * Time a granted call has to go out after its scheduled send time; a grant used later is
   * void (it stays counted, the caller is served by a new one). Default 20 ms.
   */
  readonly sendSlackMs?: number;
  /**
   * Allowance for calls of different replicas taking different times to reach the upstream
   * (network jitter, a busy event loop between grant and socket write); widens every call's span. Default 40 ms.
   */
  readonly latencySpreadMs?: number;
  /** How long a call may wait for a free slot (or the end of an upstream pause) before it is refused. Default 2 000 ms. */
  readonly maxWaitMs?: number;
  /** This replica's clock; tests inject a skewed one. Default monotonic, epoch-anchored. */
  readonly clock?: LocalClock;
  /** Receives the line naming a benched credential (by id, never its secret). Default: none. */
  readonly log?: LimiterLog;
}

/** One admitted call: usage and quota of its tightest window after admission (null when unlimited). */
export interface Acquired {
  readonly usage: number | null;
  readonly quota: number | null;
  /** usage / quota, or null when unknown. */
  readonly percent: number | null;
  /** The tightest window's length, e.g. `1s`; null when unlimited. */
  readonly window: string | null;
  /** Server time (epoch ms) from which the tightest window counts this call. */
  readonly windowStart: number | null;
  /** Latest server time the grant was recorded at; {@link Limiter.settle} moves it when the call ran late. */
  readonly latest?: number;
  /** For a pooled source, the stable id of the credential the call must use; absent otherwise. */
  readonly credential?: string;
}

/** Usage of one rate window as stored in KV. */
export interface WindowUsage {
  readonly window: string;
  readonly perMs: number;
  readonly limit: number;
  readonly align: "rolling" | "clock";
  /** The declared limit, present only while an upstream's headers hold `limit` below it. */
  readonly declared?: number;
  /** Calls counted now: in the last `perMs` (rolling) or in the current aligned window (clock). */
  readonly used: number;
  readonly percent: number;
  /** Epoch ms at which the counted interval started. */
  readonly windowStart: number;
  /** Until a call's worth of room opens (rolling) or the window resets (clock), ms. */
  readonly resetsInMs: number;
}

/** A source's quota state across all replicas. */
export interface QuotaReport {
  readonly source: string;
  readonly unlimited: boolean;
  /** The tightest window's numbers; null when unlimited. */
  readonly usage: number | null;
  readonly quota: number | null;
  readonly percent: number | null;
  readonly windows: readonly WindowUsage[];
  /** Epoch ms until which an upstream 429 paused the source; null when not paused. */
  readonly blockedUntil: number | null;
  /**
   * A pooled source's credentials, by stable id (never the secret). The source's own numbers
   * and `windows` are then the pool-wide ones: `windows` those all credentials share, and
   * usage, quota and percent those of the credential with the most room, or of a shared window
   * that is fuller.
   */
  readonly credentials?: readonly CredentialQuota[];
}

/** One credential of a pool: its own windows and whether it can take calls. */
export interface CredentialQuota {
  /** The name given in the pool, or a short hash of the secret for a listed one. */
  readonly id: string;
  /** Its tightest window's numbers; null when the source is unlimited. */
  readonly usage: number | null;
  readonly quota: number | null;
  readonly percent: number | null;
  readonly windows: readonly WindowUsage[];
  /** Epoch ms until which it rests after a 401/403; null when usable. */
  readonly benchedUntil: number | null;
  /** Epoch ms until which the upstream paused it; null when not paused. */
  readonly blockedUntil: number | null;
}

/** Counters of the limiter's own behaviour, for /metrics. */
export interface LimiterStats {
  /** Grants confirmed too late to be used (slow KV); they stay counted. */
  readonly lateGrants: number;
  /** Calls those late grants held: spent in the windows, never sent. */
  readonly voidedCalls: number;
  /** Compare-and-set rounds lost to another replica. */
  readonly conflicts: number;
  /** Calls answered after their grant's span ended, whose record was moved later. */
  readonly slowCalls: number;
}

/** The shared rate limiter: every replica's admissions are ordered in one KV bucket. */
export interface Limiter {
  /**
   * Admits one upstream call, resolving when it may be sent (at most `maxWaitMs` from now);
   * send it at once. Throws OVER_QUOTA with `details.retryAfterMs` when it cannot be admitted
   * that soon.
   */
  acquire(source: string): Promise<Acquired>;
  /** Usage of every window of `source`, read fresh from KV. */
  report(source: string): Promise<QuotaReport>;
  /**
   * Corrects the shared view from an upstream answer (the call used `credential` of a pool):
   * 429, Retry-After, the X-RateLimit-* and RateLimit-* trios and the IETF RateLimit and
   * RateLimit-Policy fields pause, fill or lower its windows for every replica. Only ever lowers
   * what is admitted, never above the declared quota.
   */
  observeUpstream(source: string, status: number, headers: HeaderBag, credential?: string): Promise<void>;
  /**
   * The upstream refused `credential` of the pool of `source` (HTTP `status`, 401 or 403): it
   * rests for the pool's bench time on every replica, and the others take its calls. Logged
   * once by the replica that saw it. No-op outside pools.
   */
  bench(source: string, credential: string | undefined, status: number): Promise<void>;
  /** Names the credentials (stable ids, never secrets) of pooled `source`; the fetcher calls it once their secrets are read. */
  usePool(source: string, ids: readonly string[]): void;
  /**
   * Call once the admitted call is done (answered or failed). A call may reach the upstream
   * any time before its answer returns; when that is later than its grant claimed (a new TLS
   * connection, a slow network), its record is moved to now so no replica reuses the slot
   * early. Costs a KV write only for such slow calls.
   */
  settle(source: string, acquired: Acquired): Promise<void>;
  /** Local estimate of ms until `source` can admit a call (0 = now or unknown); for pull gating. */
  waitHint(source: string): number;
  /** Names of the sources this limiter knows. */
  sources(): string[];
  stats(): LimiterStats;
  /** Stops watching the bucket; later acquires fail with UNAVAILABLE. */
  close(): Promise<void>;
}
