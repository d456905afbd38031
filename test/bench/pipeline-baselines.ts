// The two raw baselines of the pipeline bench, run in the same process against the same servers:
// (a) executeConcurrent of N dump rows of the website shape into a table of the dump schema;
// (b) N one-record messages like the pipeline's STORE messages published to a JetStream work
//     queue and consumed with a pull consumer, each acked.
import { readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import cassandra from "cassandra-driver";
import { parse as parseYaml } from "yaml";
import { headers as makeHeaders } from "@nats-io/nats-core";
import type { NatsConnection } from "@nats-io/nats-core";
import { AckPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager } from "@nats-io/jetstream";
import {
  compileTypeDef,
  createKeyspaceCql,
  createTableCql,
  dayOf,
  dumpTableSpec,
  keyValues,
  toCql,
  type TypeDef,
} from "@machina/data";
import type { RecordBatch } from "@machina/protos";
import { CONTENT_TYPE_PROTOBUF, SENDER_HEADER, TIMING_HEADER, encodeBody } from "@machina/wire";
import { syntheticSite } from "../fixtures/fake-api";
import { PIPELINE } from "../support/pipeline-config";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const NS_PER_MS = 1_000_000;
const quoteId = (name: string) => `"${name.replace(/"/g, '""')}"`;
const int = (x: number) => Math.round(x).toLocaleString("en-US");

/** Rate of one baseline. */
export interface BaselineResult {
  n: number;
  ms: number;
  perSecond: number;
  /** Payload bytes per message (JetStream only). */
  bytes?: number;
}

/** The example website type, compiled as the data service compiles it. */
export function websiteType(): TypeDef {
  const file = path.join(ROOT, "config/default/data/types/website.yaml");
  return compileTypeDef({ name: PIPELINE.type, ...(parseYaml(readFileSync(file, "utf8")) as object) }, file);
}

/** A Cassandra client with the data service's options (bigint as BigInt, unset for undefined, LOCAL_QUORUM, prepared). */
export function benchCqlClient(port: number): cassandra.Client {
  return new cassandra.Client({
    contactPoints: [`127.0.0.1:${port}`],
    localDataCenter: "datacenter1",
    encoding: { useBigIntAsLong: true, useUndefinedAsUnset: true },
    queryOptions: { consistency: cassandra.types.consistencies.localQuorum, prepare: true },
  });
}

/** Creates `keyspace` and a table of the dump schema of websites; returns the insert and a row maker. */
export async function prepareDumpTable(
  client: cassandra.Client,
  keyspace: string,
  table: string,
): Promise<{ insert: string; row: (domain: string, at: number) => unknown[] }> {
  const def = websiteType();
  const spec = { ...dumpTableSpec(def), name: table };
  await client.execute(createKeyspaceCql(keyspace, { datacenter1: 1 }));
  await client.execute(createTableCql(keyspace, spec));
  const valueFields = Object.keys(def.fields).filter((f) => !def.key.includes(f));
  const columns = [...def.key, "day", "fetched_at", "source", "query", "seq", "task_id", ...valueFields];
  const insert =
    `INSERT INTO ${keyspace}.${table} (${columns.map(quoteId).join(", ")}) ` +
    `VALUES (${columns.map(() => "?").join(", ")})`;
  // The same params writeDump binds for one raw answer.
  const row = (domain: string, at: number): unknown[] => {
    const record = syntheticSite(domain) as unknown as Record<string, unknown>;
    const key = keyValues(def, record, PIPELINE.source);
    return [
      ...def.key.map((f) => key[f]),
      dayOf(at),
      new Date(at),
      PIPELINE.source,
      PIPELINE.query,
      0,
      `raw@${at}/${domain}`,
      ...valueFields.map((f) => toCql(def.fields[f], record[f], { type: def.name, field: f }) ?? undefined),
    ];
  };
  return { insert, row };
}

/** (a) `executeConcurrent` of `n` dump rows (rows built before the clock starts). */
export async function cassandraBaseline(
  client: cassandra.Client,
  keyspace: string,
  n: number,
  concurrency: number,
  tag: string,
): Promise<BaselineResult> {
  const { insert, row } = await prepareDumpTable(client, keyspace, "raw_dump_website");
  const at = Date.now();
  const params = Array.from({ length: n }, (_, i) => row(`${tag}${i}.bench`, at));
  const t0 = performance.now();
  await cassandra.concurrent.executeConcurrent(client, insert, params, { concurrencyLevel: concurrency });
  const ms = performance.now() - t0;
  return { n, ms, perSecond: (n * 1000) / ms };
}

/** Runs `run` `n` times one after the other; the median run, with the range of rates. */
export async function medianOf(
  n: number,
  run: (i: number) => Promise<BaselineResult>,
): Promise<BaselineResult & { range: string }> {
  const all: BaselineResult[] = [];
  for (let i = 0; i < n; i++) all.push(await run(i));
  all.sort((a, b) => a.perSecond - b.perSecond);
  const range = `${int(all[0].perSecond)}–${int(all[all.length - 1].perSecond)}`;
  return { ...all[Math.floor(all.length / 2)], range };
}

/** Rows of a table and the oldest and newest write times (epoch ms) of `column` among them, paging through all. */
export async function scanWrites(
  cql: cassandra.Client,
  table: string,
  column: string,
  /** Rows written before this epoch ms are left out (an earlier warm-up's). */
  since = 0,
): Promise<{ rows: number; firstWriteMs: number; lastWriteMs: number }> {
  let rows = 0;
  let first = Infinity;
  let last = 0;
  let pageState: string | undefined;
  do {
    const rs = await cql.execute(`SELECT writetime("${column}") AS wt FROM ${table}`, [], {
      fetchSize: 5000,
      pageState,
      prepare: true,
    });
    for (const r of rs.rows) {
      const wt = Number(String(r.get("wt"))) / 1000;
      if (wt < since) continue;
      rows++;
      if (wt > last) last = wt;
      if (wt < first) first = wt;
    }
    pageState = rs.pageState ?? undefined;
  } while (pageState);
  return { rows, firstWriteMs: rows === 0 ? 0 : first, lastWriteMs: last };
}

/** The batch the pipeline stores for one website record fetched at `at` (ids as invoke builds them). */
export function storeBatch(domain: string, at: number): RecordBatch {
  const taskId = `${PIPELINE.trigger}@${at}/${PIPELINE.querySet}/${domain}/${PIPELINE.query}`;
  return {
    id: `${taskId}:${PIPELINE.type}`,
    type: PIPELINE.type,
    source: PIPELINE.source,
    query: PIPELINE.query,
    taskId,
    fetchedAt: at,
    records: [syntheticSite(domain) as unknown as RecordBatch["records"][number]],
    firstSeq: 0,
  };
}

/** A STORE message (RecordBatches) holding one website record, encoded as the pipeline's are. */
export function storeMessage(domain: string, at: number): Uint8Array {
  return encodeBody("RecordBatches", { batches: [storeBatch(domain, at)] }, "protobuf");
}

/**
 * (b) `n` STORE-like messages (same body and headers as the pipeline's) published with
 * `inFlight` unacknowledged publishes to a work-queue stream while one pull consumer of the same
 * process consumes and acks each; timed from the first publish to the last message acked.
 */
export async function jetstreamBaseline(
  nc: NatsConnection,
  prefix: string,
  n: number,
  inFlight: number,
  tag: string,
): Promise<BaselineResult> {
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const stream = `${prefix.toUpperCase()}_RAW_${tag.toUpperCase()}`;
  const subject = `${prefix}.rawbench.${tag}`;
  await jsm.streams.add({
    name: stream,
    subjects: [subject],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    duplicate_window: 5 * 60_000 * NS_PER_MS,
  });
  try {
    await jsm.consumers.add(stream, {
      durable_name: "raw",
      ack_policy: AckPolicy.Explicit,
      ack_wait: 30_000 * NS_PER_MS,
      max_ack_pending: 1000,
    });
    const consumer = await js.consumers.get(stream, "raw");
    const at = Date.now();
    const bodies = Array.from({ length: n }, (_, i) => storeMessage(`${tag}${i}.bench`, at));
    const timing = "fetch;dur=2.50, invoke;dur=1.20, aggregate;dur=0.90";
    const t0 = performance.now();
    const messages = await consumer.consume({ max_messages: 256 });
    const consumed = (async () => {
      let got = 0;
      for await (const m of messages) {
        m.ack();
        if (++got >= n) break;
      }
      return performance.now();
    })();
    let next = 0;
    const lane = async () => {
      while (next < n) {
        const i = next++;
        const h = makeHeaders();
        h.set("Content-Type", CONTENT_TYPE_PROTOBUF);
        h.set(TIMING_HEADER, timing);
        h.set(SENDER_HEADER, "bench");
        await js.publish(subject, bodies[i], { msgID: `${tag}/${i}`, headers: h });
      }
    };
    await Promise.all(Array.from({ length: Math.min(inFlight, n) }, lane));
    const end = await consumed;
    await messages.close();
    const ms = end - t0;
    return { n, ms, perSecond: (n * 1000) / ms, bytes: bodies[0].length };
  } finally {
    await jsm.streams.delete(stream).catch(() => undefined);
  }
}

/**
 * A reference, not a baseline of the ratio: `n` GETs of the pipeline's query (one per lead) sent
 * to the fake API as the fetch service sends them (node:http, keep-alive, `inFlight` at once),
 * each answer read whole. A pipeline with one upstream call per record can move no more than this.
 */
export async function upstreamAlone(
  apiUrl: string,
  apiKey: string,
  n: number,
  inFlight: number,
  tag: string,
): Promise<BaselineResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: inFlight });
  const base = new URL(apiUrl);
  const get = (path: string) =>
    new Promise<void>((resolve, reject) => {
      const req = http.request(
        {
          host: base.hostname,
          port: base.port,
          path,
          agent,
          headers: { "X-Api-Key": apiKey, accept: "application/json" },
        },
        (res) => {
          res.on("data", () => undefined);
          res.on("end", () =>
            res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode} for ${path}`)),
          );
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end();
    });
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < n) await get(`/v3/sites/${tag}${next++}.bench`);
    }),
  );
  const ms = performance.now() - t0;
  agent.destroy();
  return { n, ms, perSecond: (n * 1000) / ms };
}
