/** Stable symbolic error codes; callers branch on these, never on messages. */
export const ErrorCode = {
  BAD_REQUEST: "BAD_REQUEST",
  UNKNOWN_SOURCE: "UNKNOWN_SOURCE",
  OVER_QUOTA: "OVER_QUOTA",
  UPSTREAM: "UPSTREAM",
  TIMEOUT: "TIMEOUT",
  UNAVAILABLE: "UNAVAILABLE",
  CONFLICT: "CONFLICT",
  NOT_FOUND: "NOT_FOUND",
  INTERNAL: "INTERNAL",
} as const;

/** One of the stable symbolic error codes. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** HTTP-like status carried in `Nats-Service-Error-Code` for each symbolic code. */
export const statusOf: Record<ErrorCode, number> = {
  BAD_REQUEST: 400,
  UNKNOWN_SOURCE: 404,
  NOT_FOUND: 404,
  CONFLICT: 409,
  OVER_QUOTA: 429,
  INTERNAL: 500,
  UPSTREAM: 502,
  UNAVAILABLE: 503,
  TIMEOUT: 504,
};

// Codes that a caller may sensibly retry unchanged unless the thrower says otherwise.
const retryableByDefault = new Set<ErrorCode>(["OVER_QUOTA", "UPSTREAM", "TIMEOUT", "UNAVAILABLE"]);

/** Options for a {@link MachinaError}. */
export interface MachinaErrorOptions {
  /** Machine-readable context (field names, limits, retry delay); never secrets. Default `{}`. */
  details?: Record<string, unknown>;
  /** Whether retrying the same request may succeed. Default: true for OVER_QUOTA, UPSTREAM, TIMEOUT, UNAVAILABLE. */
  retryable?: boolean;
  /** Underlying error, kept for logs only. */
  cause?: unknown;
}

/** The one error base of the project: a stable `code`, a `retryable` flag and an actionable message. */
export class MachinaError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, opts: MachinaErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "MachinaError";
    this.code = code;
    this.retryable = opts.retryable ?? retryableByDefault.has(code);
    this.details = opts.details ?? {};
  }

  /** HTTP-like status for this error's code. */
  get status(): number {
    return statusOf[this.code];
  }
}

/** True when `err` is a MachinaError, optionally of the given code. */
export function isMachinaError(err: unknown, code?: ErrorCode): err is MachinaError {
  return err instanceof MachinaError && (code === undefined || err.code === code);
}

/** Turns anything thrown into a MachinaError; unknown throwables become INTERNAL. */
export function toMachinaError(err: unknown): MachinaError {
  if (err instanceof MachinaError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new MachinaError("INTERNAL", `internal error: ${message}`, { cause: err, retryable: false });
}
