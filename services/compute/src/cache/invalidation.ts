import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import type { Logger } from "@machina/log";
import { codec, type JsonObject } from "@machina/protos";
import type { MeshNames } from "@machina/subjects";
import type { ResultCache } from "./result-cache";

/** Stops listening. */
export type StopInvalidation = () => void;

/**
 * Keeps a replica's result cache in step with the data: every clean change data announces
 * (`data.changed.<type>`) drops the entries that read it, a `cache.invalidate` broadcast drops
 * what it names, and a reconnect drops everything, since events sent while this replica was
 * away are lost (they are core NATS, at most once).
 */
export function followInvalidations(
  nc: NatsConnection,
  names: MeshNames,
  cache: ResultCache,
  log: Logger,
): StopInvalidation {
  const changed = codec("DataChanged");
  const broadcast = codec("CacheInvalidate");
  const subs: Subscription[] = [
    nc.subscribe(names.any.dataChanged, {
      callback: (err, msg) => {
        if (err !== null) return;
        try {
          const ev = changed.decode(msg.data);
          const [type] = names.tail(msg.subject, 1);
          cache.invalidate(type, (ev.key ?? null) as JsonObject | null, "data");
        } catch (e) {
          log.warn({ err: e, subject: msg.subject }, "ignored a malformed data change announcement");
        }
      },
    }),
    nc.subscribe(names.cacheInvalidate, {
      callback: (err, msg) => {
        if (err !== null) return;
        try {
          const ev = broadcast.decode(msg.data);
          const key = ev.key != null && Object.keys(ev.key).length > 0 ? (ev.key as JsonObject) : null;
          cache.invalidate(ev.type, key, "broadcast");
        } catch (e) {
          log.warn({ err: e, subject: msg.subject }, "ignored a malformed cache invalidation");
        }
      },
    }),
  ];
  let stopped = false;
  void (async () => {
    for await (const s of nc.status()) {
      if (stopped) break;
      if (s.type === "reconnect") {
        const n = cache.invalidate("", null, "reconnect");
        log.info({ entries: n }, "dropped the result cache: change events may have been missed while disconnected");
      }
    }
  })().catch(() => undefined);
  return () => {
    stopped = true;
    for (const s of subs) s.unsubscribe();
  };
}
