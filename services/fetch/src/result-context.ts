import { MachinaError } from "@machina/wire";

/** The error with `extra` added to its details (lead, pages fetched, attempts); other errors unchanged. */
export function withContext(err: unknown, extra: Record<string, unknown>): unknown {
  if (!(err instanceof MachinaError)) return err;
  return new MachinaError(err.code, err.message, {
    retryable: err.retryable,
    details: { ...err.details, ...extra },
    cause: err.cause ?? err,
  });
}

/** Milliseconds rounded to microseconds, as Meta reports times. */
export function ms(v: number): number {
  return Math.round(v * 1000) / 1000;
}
