import { isDeepStrictEqual } from "node:util";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { MeshNames } from "@machina/subjects";
import { MachinaError } from "@machina/wire";
import type { StatefulAggregator } from "../config/aggregator-table";
import type { StateStore } from "./state-store";

/** How a type's state is laid out: what it takes to read it back. */
interface Layout {
  kind: string;
  partitions: number;
  key: string[];
}

/**
 * Records each stateful type's layout (kind, partitions, key) next to its state, and refuses to
 * start with CONFLICT when the config changes it while state or queued records remain: keys
 * would hash to other partitions and stored state would be read by the wrong kind. A change on
 * a type with nothing kept is simply recorded.
 */
export async function checkLayout(
  store: StateStore,
  jsm: JetStreamManager,
  names: MeshNames,
  agg: StatefulAggregator,
): Promise<void> {
  const want: Layout = { kind: agg.kind, partitions: agg.partitions, key: agg.key };
  const key = `${agg.type}.layout`;
  const entry = await store.kv.get(key);
  if (entry === null || entry.operation !== "PUT") {
    // Another replica may record it at the same moment; theirs then is checked like any other.
    await store.kv.create(key, JSON.stringify(want)).catch(() => undefined);
    const now = await store.kv.get(key);
    if (now !== null && now.operation === "PUT" && !isDeepStrictEqual(now.json<Layout>(), want))
      return checkLayout(store, jsm, names, agg);
    return;
  }
  const have = entry.json<Layout>();
  if (isDeepStrictEqual(have, want)) return;
  const left = await leftovers(store, jsm, names, agg.type);
  if (left.length === 0) {
    await store.kv.put(key, JSON.stringify(want));
    return;
  }
  throw new MachinaError(
    "CONFLICT",
    `${agg.origin}: type ${agg.type} has aggregate ${left.join(" and ")} laid out as ${describe(have)}, but the config asks for ${describe(want)}; ` +
      `changing the partitions, kind or key of a type that keeps state would misplace it. Keep the old settings, or ${drainHint(store, names, agg.type)}`,
    { retryable: false, details: { type: agg.type, have, want } },
  );
}

/**
 * Lets a stateful type stop being stateful (removed, or made passthrough) only when it keeps
 * nothing: no state and no records queued on its partitions, which no replica would work on
 * any more. Then its recorded layout goes too, so a later declaration starts afresh. CONFLICT
 * otherwise, saying how to drain it.
 */
export async function checkRetire(
  store: StateStore,
  jsm: JetStreamManager,
  names: MeshNames,
  type: string,
  origin: string,
): Promise<void> {
  const left = await leftovers(store, jsm, names, type);
  if (left.length === 0) {
    await store.kv.delete(`${type}.layout`).catch(() => undefined);
    return;
  }
  throw new MachinaError(
    "CONFLICT",
    `${origin}: type ${type} has aggregate ${left.join(" and ")}, which no replica would work on once it stops being stateful; ` +
      `keep it stateful until it is drained: ${drainHint(store, names, type)}`,
    { retryable: false, details: { type } },
  );
}

// What a type keeps: stored key states, and records queued on its partitions.
async function leftovers(store: StateStore, jsm: JetStreamManager, names: MeshNames, type: string): Promise<string[]> {
  const left: string[] = [];
  for await (const _ of await store.kv.keys(`${type}.*.k.>`)) {
    left.push("state");
    break;
  }
  const queued = await jsm.streams
    .info(names.streams.AGGREGATE, { subjects_filter: `${names.task.aggregate(type)}.*` })
    .then((i) => Object.values(i.state.subjects ?? {}).reduce((a, b) => a + b, 0))
    .catch(() => 0);
  if (queued > 0) left.push(`${queued} queued records messages`);
  return left;
}

function drainHint(store: StateStore, names: MeshNames, type: string): string {
  return (
    `let the type drain (stop what feeds it, wait until ${names.streams.AGGREGATE} holds nothing for it), then remove its state: ` +
    `nats stream purge KV_${store.bucket} --subject '$KV.${store.bucket}.${type}.>' --force`
  );
}

function describe(l: Layout): string {
  return `${l.kind} in ${l.partitions} partition${l.partitions === 1 ? "" : "s"} by ${l.key.join(", ")}`;
}
