import { codec, type JsonObject } from "@machina/protos";
import type { MeshNames, StoreName } from "@machina/subjects";
import type { TypeDef } from "./schema";

/** What happened to a clean record. */
export type ChangeOp = "merged" | "created" | "updated" | "deleted";

/** Announces changed clean records on `data.changed.<type>`; dump writes are not announced. */
export type ChangeAnnouncer = (
  store: StoreName,
  type: string,
  records: readonly Record<string, unknown>[],
  op: ChangeOp,
) => void;

/**
 * Publishes one DataChanged per clean record (its key fields only) on core NATS. At most once by
 * design: a listener that must not miss a change also re-reads on a timer, and the write it
 * announces is already stored, so a lost event only delays a refresh.
 */
export function changeAnnouncer(
  /** Core NATS publish (fire and forget); it may throw once the connection is closed. */
  publish: (subject: string, data: Uint8Array) => void,
  names: MeshNames,
  types: readonly TypeDef[],
): ChangeAnnouncer {
  const byName = new Map(types.map((t) => [t.name, t]));
  const enc = codec("DataChanged");
  return (store, type, records, op) => {
    const def = byName.get(type);
    if (store !== "clean" || def === undefined) return;
    const subject = names.dataChanged(type);
    try {
      for (const r of records) {
        const key = Object.fromEntries(def.key.map((f) => [f, r[f] ?? null])) as JsonObject;
        publish(subject, enc.encode({ type, key, op }));
      }
    } catch {
      // A closing connection: the write is stored; listeners catch up on their timer.
    }
  };
}
