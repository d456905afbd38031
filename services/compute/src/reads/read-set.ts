import type { JsonObject } from "@machina/protos";

/**
 * What one computation run read, so its cached result is dropped when that data changes: whole
 * types (a scan), single entities (by canonical key), or something no change event covers.
 */
export class ReadSet {
  /** Types read whole: any change of the type invalidates. */
  readonly types = new Set<string>();
  /** Entities read one by one, type → canonical keys. */
  readonly entities = new Map<string, Set<string>>();
  /** Why the result must not be cached (e.g. raw dump rows, which change without an event); null when it may be. */
  uncacheable: string | null = null;

  /** Notes a scan of every record of `type`. */
  type(type: string): void {
    this.types.add(type);
  }

  /** Notes a read of one entity. */
  entity(type: string, key: JsonObject): void {
    let keys = this.entities.get(type);
    if (keys === undefined) this.entities.set(type, (keys = new Set()));
    keys.add(canonicalKey(key));
  }

  /** Notes a read whose data changes without an announcement. */
  unannounced(reason: string): void {
    this.uncacheable ??= reason;
  }

  /** Every type this run depends on, whole or in part. */
  allTypes(): Set<string> {
    return new Set([...this.types, ...this.entities.keys()]);
  }

  /** Adds another run's reads (a computation calling another). */
  merge(other: ReadSet): void {
    for (const t of other.types) this.types.add(t);
    for (const [t, keys] of other.entities) for (const k of keys) this.entity(t, JSON.parse(k) as JsonObject);
    if (other.uncacheable !== null) this.unannounced(other.uncacheable);
  }
}

/** An entity key as text independent of field order, so a change event and a read name it alike. */
export function canonicalKey(key: JsonObject): string {
  return JSON.stringify(
    Object.keys(key)
      .sort()
      .map((k) => [k, key[k]]),
  );
}
