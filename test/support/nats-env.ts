import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import type { MeshNames } from "@machina/subjects";

/** URL of the nats-server `make test` started (test/harness/run-tests.sh). */
export const NATS_URL = process.env.MACHINA_NATS_URL ?? "nats://127.0.0.1:14222";

/** A subject prefix no other test uses, so tests share one server without seeing each other. */
export function uniquePrefix(label: string): string {
  return `t${label.replace(/[^a-z0-9]/gi, "").slice(0, 8)}${randomBytes(3).toString("hex")}`;
}

/** An empty config root (no files), for services whose config comes from env in a test. */
export function emptyConfigDir(): string {
  return mkdtempSync(path.join(tmpdir(), "machina-cfg-"));
}

/** Deletes every stream and KV bucket of one test network (a prefix), whichever of them exist. */
export async function removeNetwork(nc: NatsConnection, names: MeshNames): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const s of Object.values(names.streams)) await jsm.streams.delete(s).catch(() => undefined);
  const kvm = new Kvm(nc);
  for (const b of Object.values(names.buckets)) await (await kvm.open(b)).destroy().catch(() => undefined);
}
