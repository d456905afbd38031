import { MachinaError, toMachinaError } from "@machina/wire";
import { CLEAN_FAILED_TABLE, entityKeyJson, keyValues, parseEntityKeyJson, toPlain, type TypeDef } from "../schema";
import { execute, markDirty, pageOptions, tableRef, type DataContext, type DirtyMark } from "../store";

/** An entity window the clean job gave up on after repeated failures. */
export interface FailedWindow {
  /** Key fields as plain JSON. */
  readonly key: Record<string, unknown>;
  /** Epoch ms start of the window. */
  readonly windowStart: number;
  /** Stable error code of the last failure, e.g. BAD_REQUEST. */
  readonly code: string;
  readonly error: string;
  readonly attempts: number;
  /** Epoch ms it was parked. */
  readonly failedAt: number;
}

/** A page of failed windows and the token of the next page ("" when this is the last). */
export interface FailedPage {
  readonly failed: FailedWindow[];
  readonly next: string;
}

/** Parks an entity window in the failed list with its last error; it is merged again only when retried. */
export async function parkFailed(ctx: DataContext, mark: DirtyMark, err: unknown, attempts: number): Promise<void> {
  const e = toMachinaError(err);
  await execute(
    ctx.client,
    `INSERT INTO ${tableRef(ctx, CLEAN_FAILED_TABLE)} (type, key, window_start, code, error, attempts, failed_at) ` +
      `VALUES (?, ?, ?, ?, ?, ?, ?)`,
    [
      mark.type,
      mark.key,
      new Date(mark.windowStart),
      e.code,
      e.message.slice(0, 2000),
      attempts,
      new Date(ctx.clock()),
    ],
    `parking a failed clean window of ${mark.type}`,
  );
}

/** One page of a type's failed windows, in key order. */
export async function listFailed(
  ctx: DataContext,
  def: TypeDef,
  options: { limit?: number; page?: string },
): Promise<FailedPage> {
  const { limit, page } = pageOptions(options);
  const rs = await execute(
    ctx.client,
    `SELECT key, window_start, code, error, attempts, failed_at FROM ${tableRef(ctx, CLEAN_FAILED_TABLE)} WHERE type = ?`,
    [def.name],
    `listing failed clean windows of ${def.name}`,
    { fetchSize: limit, autoPage: false, ...(page === "" ? {} : { pageState: page }) },
  );
  const failed = rs.rows.map((r) => ({
    key: plainKey(def, r.get("key") as string),
    windowStart: (r.get("window_start") as Date).getTime(),
    code: (r.get("code") as string | null) ?? "",
    error: (r.get("error") as string | null) ?? "",
    attempts: (r.get("attempts") as number | null) ?? 0,
    failedAt: (r.get("failed_at") as Date | null)?.getTime() ?? 0,
  }));
  return { failed, next: rs.pageState ?? "" };
}

/**
 * Takes windows off the failed list and marks them dirty again, so the next clean run merges
 * them (after a fix to the data or the type). `keys` picks entities; empty retries every one.
 * Answers how many windows were put back.
 */
export async function retryFailed(
  ctx: DataContext,
  def: TypeDef,
  keys: readonly Record<string, unknown>[],
): Promise<number> {
  const wanted = new Set(keys.map((k, i) => keyJsonOf(def, k, i)));
  const table = tableRef(ctx, CLEAN_FAILED_TABLE);
  const picked: DirtyMark[] = [];
  let pageState: string | undefined;
  do {
    const rs = await execute(
      ctx.client,
      `SELECT key, window_start FROM ${table} WHERE type = ?`,
      [def.name],
      `reading failed clean windows of ${def.name}`,
      { fetchSize: 1000, autoPage: false, ...(pageState === undefined ? {} : { pageState }) },
    );
    for (const r of rs.rows) {
      const key = r.get("key") as string;
      if (wanted.size === 0 || wanted.has(key))
        picked.push({ type: def.name, key, windowStart: (r.get("window_start") as Date).getTime() });
    }
    pageState = rs.pageState ?? undefined;
  } while (pageState);
  // Marked before they leave the list: a crash in between leaves a window listed and dirty, never neither.
  await markDirty(ctx, picked);
  for (const m of picked) {
    ctx.clean.attempts.delete(attemptId(m));
    await execute(
      ctx.client,
      `DELETE FROM ${table} WHERE type = ? AND key = ? AND window_start = ?`,
      [m.type, m.key, new Date(m.windowStart)],
      `taking a window of ${def.name} off the failed list`,
    );
  }
  return picked.length;
}

/** Identity of an entity window in the clean job's attempt counts. */
export function attemptId(mark: DirtyMark): string {
  return `${mark.type}\u0000${mark.key}\u0000${mark.windowStart}`;
}

function plainKey(def: TypeDef, keyJson: string): Record<string, unknown> {
  const key = parseEntityKeyJson(def, keyJson);
  return Object.fromEntries(def.key.map((f) => [f, toPlain(def.fields[f], key[f])]));
}

// The stored key JSON of a requested key, so it matches what marks carry whatever the field order given.
function keyJsonOf(def: TypeDef, key: Record<string, unknown>, i: number): string {
  if (typeof key !== "object" || key === null || Array.isArray(key)) {
    throw new MachinaError("BAD_REQUEST", `keys[${i}]: expected an object naming the key (${def.key.join(", ")})`, {
      details: { type: def.name, item: i },
    });
  }
  const missing = def.key.filter((f) => !Object.hasOwn(key, f) || key[f] === null || key[f] === undefined);
  if (missing.length > 0) {
    throw new MachinaError("BAD_REQUEST", `keys[${i}]: missing key field ${missing.join(", ")}`, {
      details: { type: def.name, item: i, missing },
    });
  }
  return entityKeyJson(def, keyValues(def, key));
}
