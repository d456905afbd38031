import { nuid } from "@nats-io/nats-core";
import type { NatsConnection } from "@nats-io/nats-core";
import { FixedHeaders, MachinaError } from "@machina/wire";
import { isCasConflict } from "./cas-conflict";
import type { MeshClient } from "./mesh-client";
import { readPubAck } from "./publish";
import type { StoredAck } from "./publish";

/** One message of an atomic batch. */
export interface AtomicEntry {
  subject: string;
  data: Uint8Array;
  /** Extra headers, e.g. `KV-Operation: DEL` or `Nats-Expected-Last-Subject-Sequence`. */
  headers?: readonly (readonly [string, string])[];
}

/** Most messages the server accepts in one atomic batch (nats-server 2.12). */
export const MAX_ATOMIC_BATCH = 1000;

// How long the commit waits for the stream's acknowledgement.
const COMMIT_TIMEOUT_MS = 10_000;

/**
 * Stores `entries` in one stream all at once or not at all (JetStream atomic batch publish; the
 * stream needs `allow_atomic`). Every message but the last goes out without waiting; the last
 * commits the batch and its PubAck answers for all, so a batch costs one round trip. A
 * `Nats-Expected-Last-Subject-Sequence` on any entry fences the whole batch: when it does not
 * hold, nothing is stored and this throws CONFLICT (`details.conflict: true`, not retryable).
 * Anything else that keeps the batch from being stored (no server, a time-out) is UNAVAILABLE;
 * after a time-out the batch may or may not be stored, so callers re-read what they wrote.
 */
export async function publishAtomic(
  nc: NatsConnection,
  client: MeshClient,
  entries: readonly AtomicEntry[],
): Promise<StoredAck> {
  if (entries.length === 0) throw new TypeError("publishAtomic: an atomic batch needs at least one message");
  if (entries.length > MAX_ATOMIC_BATCH)
    throw new TypeError(`publishAtomic: ${entries.length} messages; a batch holds at most ${MAX_ATOMIC_BATCH}`);
  const id = nuid.next();
  const last = entries.length - 1;
  try {
    for (let i = 0; i < last; i++) {
      const e = entries[i];
      nc.publish(e.subject, e.data, {
        headers: new FixedHeaders([
          ["Nats-Batch-Id", id],
          ["Nats-Batch-Sequence", String(i + 1)],
          ...(e.headers ?? []),
        ]),
      });
    }
    const e = entries[last];
    const headers = new FixedHeaders([
      ["Nats-Batch-Id", id],
      ["Nats-Batch-Sequence", String(last + 1)],
      ["Nats-Batch-Commit", "1"],
      ...(e.headers ?? []),
    ]);
    return readPubAck(await client.requestMsg(e.subject, e.data, { headers, timeoutMs: COMMIT_TIMEOUT_MS }));
  } catch (err) {
    if (isCasConflict(err)) {
      throw new MachinaError("CONFLICT", `another writer changed what the batch expected: ${(err as Error).message}`, {
        retryable: false,
        cause: err,
        details: { conflict: true },
      });
    }
    if (err instanceof MachinaError && err.retryable) throw err;
    throw new MachinaError("UNAVAILABLE", `could not store an atomic batch: ${(err as Error).message}`, {
      cause: err,
      details: { dependency: "nats" },
    });
  }
}
