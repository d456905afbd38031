import { MachinaError } from "@machina/wire";

/** BAD_REQUEST for a cache made or used with a bad setting (a caller's bug, never retried). */
export function specError(message: string): MachinaError {
  return new MachinaError("BAD_REQUEST", `cache: ${message}`, { retryable: false });
}

/** Whether `ms` is a usable ttl: a whole number of ms >= 1 (0 or NaN would mean "forever"). */
export function isTtlMs(ms: number): boolean {
  return Number.isSafeInteger(ms) && ms >= 1;
}
