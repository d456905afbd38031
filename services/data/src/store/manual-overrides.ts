import { manualTableName, quoteId, toCql, toPlain, type CqlValue, type TypeDef } from "../schema";
import { execute } from "./cql-exec";
import { tableRef, type DataContext } from "./data-context";

/** Field values an operator set on an entity, as driver values ready for a clean row. */
export type Overrides = Record<string, CqlValue>;

// Whether a type has any override at all, remembered per replica for a while so that merges of
// types nobody edits cost no extra read. An edit marks its window dirty with a manual mark, whose
// merge always reads the overrides: a merge that ran on a stale "none" is redone with them.
const ANY_TTL_MS = 60_000;

/** Records operator values for fields of an entity; they win over every source in later merges. */
export async function writeOverrides(
  ctx: DataContext,
  def: TypeDef,
  key: Record<string, CqlValue>,
  values: Record<string, unknown>,
): Promise<void> {
  const encoded: Record<string, string> = {};
  for (const [field, value] of Object.entries(values)) {
    // Coerced first: a value the field cannot hold is refused before anything is stored.
    const v = toCql(def.fields[field], value, { type: def.name, field, source: "manual" });
    encoded[field] = JSON.stringify(toPlain(def.fields[field], v) ?? null);
  }
  await execute(
    ctx.client,
    `UPDATE ${tableRef(ctx, manualTableName(def))} SET overrides = overrides + ?, updated_at = ? WHERE ${where(def)}`,
    [encoded, new Date(ctx.clock()), ...def.key.map((f) => key[f])],
    `recording manual values of ${def.name}`,
  );
  ctx.manualSeen.set(def.name, { any: true, at: ctx.clock() });
}

/** Drops operator values of fields of an entity; merges then take those fields from the sources again. */
export async function clearOverrides(
  ctx: DataContext,
  def: TypeDef,
  key: Record<string, CqlValue>,
  fields: readonly string[],
): Promise<void> {
  await execute(
    ctx.client,
    `UPDATE ${tableRef(ctx, manualTableName(def))} SET overrides = overrides - ?, updated_at = ? WHERE ${where(def)}`,
    [[...fields], new Date(ctx.clock()), ...def.key.map((f) => key[f])],
    `clearing manual values of ${def.name}`,
  );
}

/** The operator values of an entity (none for most), as driver values; `force` reads them whatever this replica remembers. */
export async function readOverrides(
  ctx: DataContext,
  def: TypeDef,
  key: Record<string, CqlValue>,
  force = false,
): Promise<Overrides> {
  if (force) ctx.manualSeen.set(def.name, { any: true, at: ctx.clock() });
  else if (!(await anyOverrides(ctx, def))) return {};
  const rs = await execute(
    ctx.client,
    `SELECT overrides FROM ${tableRef(ctx, manualTableName(def))} WHERE ${where(def)}`,
    def.key.map((f) => key[f]),
    `reading manual values of ${def.name}`,
  );
  const stored = (rs.first()?.get("overrides") as Record<string, string> | null | undefined) ?? {};
  const out: Overrides = {};
  for (const [field, json] of Object.entries(stored)) {
    // A field since removed from the type, or text that no longer parses, is skipped rather than failing the merge.
    if (!Object.hasOwn(def.fields, field) || def.key.includes(field)) continue;
    try {
      out[field] = toCql(def.fields[field], JSON.parse(json) as unknown, { type: def.name, field, source: "manual" });
    } catch {
      continue;
    }
  }
  return out;
}

async function anyOverrides(ctx: DataContext, def: TypeDef): Promise<boolean> {
  const seen = ctx.manualSeen.get(def.name);
  const now = ctx.clock();
  if (seen !== undefined && now - seen.at < ANY_TTL_MS) return seen.any;
  const rs = await execute(
    ctx.client,
    `SELECT ${quoteId(def.key[0])} FROM ${tableRef(ctx, manualTableName(def))} LIMIT 1`,
    [],
    `looking for manual values of ${def.name}`,
  );
  const any = rs.rows.length > 0;
  ctx.manualSeen.set(def.name, { any, at: now });
  return any;
}

function where(def: TypeDef): string {
  return def.key.map((f) => `${quoteId(f)} = ?`).join(" AND ");
}
