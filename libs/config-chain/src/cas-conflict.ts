// JetStream API codes for "expected last (subject) sequence" mismatches: a lost compare-and-set
// race. Kept here rather than imported from @machina/runtime, which depends on this library.
const WRONG_LAST_SEQUENCE = new Set([10071, 10164]);

/** True when `err` says another writer got to the KV key first. */
export function isCasConflict(err: unknown): boolean {
  const e = err as { code?: unknown; api_error?: { err_code?: unknown } } | null;
  const code = e?.api_error?.err_code ?? e?.code;
  if (typeof code === "number" && WRONG_LAST_SEQUENCE.has(code)) return true;
  return err instanceof Error && /wrong last sequence/i.test(err.message);
}
