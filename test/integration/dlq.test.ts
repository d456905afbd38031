// Dead-letter operations over NATS (vertex.dlq.list/show/replay/purge) against the real nats-server
// and Cassandra: a batch of an undeclared type is dead-lettered by the data service, listed,
// shown, replayed once the type is declared, and stored; purge, bad filters and unknown seqs.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import cassandra from "cassandra-driver";
import { connect } from "@nats-io/transport-node";
import { headers as makeHeaders } from "@nats-io/nats-core";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { JetStreamClient } from "@nats-io/jetstream";
import { dataService } from "@machina/data";
import type { DataConfig } from "@machina/data";
import { codec } from "@machina/protos";
import type {
  DeadLetterListReply,
  DeadLetterPurgeReply,
  DeadLetterReplayReply,
  DeadLetterShowReply,
  RecordBatches,
} from "@machina/protos";
import { publishDurable, startService } from "@machina/runtime";
import type { RunningService } from "@machina/runtime";
import { meshNames } from "@machina/subjects";
import { vertexService } from "@machina/vertex";
import type { VertexConfig } from "@machina/vertex";
import { CONTENT_TYPE_PROTOBUF, DEAD_LETTER_ERROR_HEADER, readErrorReply } from "@machina/wire";
import { NATS_URL, emptyConfigDir, uniquePrefix } from "../support/nats-env";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const prefix = uniquePrefix("dlq");
const names = meshNames(prefix);
const CQL_PORT = process.env.MACHINA_DATA_CASSANDRA_PORT ?? process.env.MACHINA_CQL_PORT ?? "9042";
const keyspace = `machina_dlq_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
const env = {
  MACHINA_NATS_URL: NATS_URL,
  MACHINA_MESH_PREFIX: prefix,
  MACHINA_HTTP_PORT: "0",
  MACHINA_LOG_LEVEL: "silent",
  MACHINA_DATA_CASSANDRA_PORT: CQL_PORT,
  MACHINA_DATA_CASSANDRA_KEYSPACE: keyspace,
  MACHINA_DATA_CLEAN_INTERVAL_MS: "0",
};
// A closed hour, so the dump rows are deterministic: a redelivery rewrites the same row.
const FETCHED_AT = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000;

/** A config root declaring `website`, and `company` too when asked. */
function dataConfigDir(withCompany: boolean): string {
  const dir = emptyConfigDir();
  const types = path.join(dir, "default", "data", "types");
  mkdirSync(types, { recursive: true });
  copyFileSync(path.join(ROOT, "config/default/data/types/website.yaml"), path.join(types, "website.yaml"));
  if (withCompany) {
    writeFileSync(
      path.join(types, "company.yaml"),
      "name: company\nkey: [name]\nfields:\n  name: text\n  employees: int\nmerge:\n  default: latest_non_null\ndump_ttl: 30d\nclean_window: 1h\n",
    );
  }
  return dir;
}

function startData(withCompany: boolean): Promise<RunningService<DataConfig>> {
  return startService(dataService, { handleSignals: false, configDir: dataConfigDir(withCompany), env });
}

let nc: NatsConnection;
let js: JetStreamClient;
let data: RunningService<DataConfig> | undefined;
let vertex: RunningService<VertexConfig>;

interface Answer<T> {
  status: number;
  body: T;
  error?: { code: string; message: string };
}

/** A JSON request, as an operator types it into `nats req`. */
async function ask<T>(subject: string, body: unknown): Promise<Answer<T>> {
  const m = await nc.request(subject, JSON.stringify(body), { timeout: 15_000 });
  const err = readErrorReply(m);
  if (err)
    return { status: err.status, body: JSON.parse(m.string()) as T, error: { code: err.code, message: err.message } };
  return { status: 200, body: JSON.parse(m.string()) as T };
}

async function ok<T>(subject: string, body: unknown): Promise<T> {
  const a = await ask<T>(subject, body);
  assert.equal(a.status, 200, `${subject} ${JSON.stringify(body)} answered ${a.status}: ${a.error?.message}`);
  return a.body;
}

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not reached in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// A STORE message holding one fetched batch, as aggregate sends it.
function batch(id: string, type: string, record: Record<string, string>): Partial<RecordBatches> {
  return {
    batches: [
      {
        id,
        type,
        source: "manual",
        query: "dlq-test",
        taskId: id,
        fetchedAt: FETCHED_AT,
        records: [record],
        firstSeq: 0,
      },
    ],
  };
}

const list = (req: object = {}) => ok<DeadLetterListReply>(names.vertex.dlq.list, req);
const dumpCount = async (type: string, key: object) =>
  (await ok<{ count: number }>(names.data("count", "dump", type), { criteria: key })).count;

describe("dead-letter operations (vertex.dlq.*)", { timeout: 120_000 }, () => {
  before(async () => {
    nc = await connect({ servers: NATS_URL });
    js = jetstream(nc);
    data = await startData(false);
    vertex = await startService(vertexService, { handleSignals: false, configDir: emptyConfigDir(), env });
  });

  after(async () => {
    await data?.stop();
    await vertex?.stop();
    const jsm = await jetstreamManager(nc);
    for (const s of Object.values(names.streams)) await jsm.streams.delete(s).catch(() => undefined);
    await jsm.streams.delete(`KV_${names.buckets.nodes}`).catch(() => undefined);
    await nc?.close();
    const cql = new cassandra.Client({ contactPoints: [`127.0.0.1:${CQL_PORT}`], localDataCenter: "datacenter1" });
    await cql.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => undefined);
    await cql.shutdown();
  });

  it("serves outside the DLQ stream's subjects, so a request is never stored as a dead letter", () => {
    for (const s of Object.values(names.vertex.dlq)) assert.ok(!s.startsWith(names.streamSubjects.DLQ.slice(0, -1)), s);
  });

  it("lists an empty DLQ as nothing", async () => {
    assert.deepEqual(await list({ limit: 10 }), { total: 0, groups: [], letters: [], moreGroups: 0 });
    assert.deepEqual(await ok<DeadLetterReplayReply>(names.vertex.dlq.replay, {}), {
      replayed: 0,
      failed: 0,
      failures: [],
    });
    assert.deepEqual(await ok<DeadLetterPurgeReply>(names.vertex.dlq.purge, {}), { purged: 0 });
  });

  let acmeSeq = 0;
  let globexSeq = 0;

  it("lists batches of an undeclared type, grouped by code and subject, oldest first", async () => {
    // One in protobuf (what services send), one in JSON (what a person sends), and one of another type.
    await publishDurable(
      js,
      names.task.store("company"),
      "RecordBatches",
      batch("poison-1", "company", { name: "ACME" }),
      { msgID: "poison-1" },
    );
    await eventually("the first letter", async () => ((await list()).total === 1 ? true : undefined));
    await publishDurable(
      js,
      names.task.store("gadget"),
      "RecordBatches",
      batch("poison-2", "gadget", { name: "Widget" }),
      { msgID: "poison-2" },
    );
    await eventually("the second letter", async () => ((await list()).total === 2 ? true : undefined));
    const h = makeHeaders();
    h.set("Content-Type", "application/json");
    await js.publish(names.task.store("company"), JSON.stringify(batch("poison-3", "company", { name: "Globex" })), {
      msgID: "poison-3",
      headers: h,
    });

    const all = await eventually("three dead letters", async () => {
      const r = await list({ limit: 10 });
      return r.total === 3 ? r : undefined;
    });
    assert.deepEqual(
      all.groups.map((g) => [g.code, g.subject, g.type, g.stream, g.count]),
      [
        ["NOT_FOUND", names.task.store("company"), "company", names.streams.STORE, 2],
        ["NOT_FOUND", names.task.store("gadget"), "gadget", names.streams.STORE, 1],
      ],
    );
    assert.equal(all.letters.length, 3);
    const [acme, gadget, globex] = all.letters;
    assert.ok(acme.seq < gadget.seq && gadget.seq < globex.seq, "letters oldest first");
    assert.equal(all.groups[0].oldestSeq, acme.seq);
    assert.equal(all.groups[0].oldestTime, acme.time);
    assert.ok(Math.abs(acme.time - Date.now()) < 60_000, "time is epoch ms of the dead-lettering");
    assert.match(acme.message, /unknown type "company"/);
    assert.equal(acme.deliveries, 1, "a non-retryable error is not retried");
    assert.deepEqual([acme.type, acme.stream, acme.code], ["company", names.streams.STORE, "NOT_FOUND"]);
    acmeSeq = acme.seq;
    globexSeq = globex.seq;

    // the Machina-Error-Code header still says why, for `nats stream get`
    const jsm = await jetstreamManager(nc);
    const sm = await jsm.streams.getMessage(names.streams.DLQ, { seq: acmeSeq });
    assert.equal(sm?.header.get(DEAD_LETTER_ERROR_HEADER), "NOT_FOUND");
  });

  it("filters by type, code, stream (key or name) and subject pattern, and limits the letters listed", async () => {
    assert.equal((await list({ type: "gadget" })).total, 1);
    assert.equal((await list({ code: "NOT_FOUND" })).total, 3);
    assert.equal((await list({ code: "BAD_REQUEST" })).total, 0);
    assert.equal((await list({ stream: "STORE" })).total, 3);
    assert.equal((await list({ stream: names.streams.STORE })).total, 3);
    assert.equal((await list({ stream: "fetch" })).total, 0);
    assert.equal((await list({ subject: `${prefix}.task.store.*` })).total, 3);
    assert.equal((await list({ subject: `${prefix}.task.>` })).total, 3);
    assert.equal((await list({ subject: `${prefix}.task.*.company` })).total, 2);
    assert.equal((await list({ subject: `${prefix}.task.fetch.>` })).total, 0);
    assert.equal(
      (await list({ subject: `${prefix}.task` })).total,
      0,
      "a pattern without wildcards matches only itself",
    );
    const two = await list({ type: "company", limit: 1 });
    assert.equal(two.total, 2);
    assert.deepEqual(
      two.letters.map((l) => l.seq),
      [acmeSeq],
      "the oldest letter",
    );
    assert.equal((await list({ type: "company" })).letters.length, 0, "limit 0 lists counts only");
  });

  it("shows one letter with its error and the payload decoded from protobuf or JSON", async () => {
    const acme = await ok<DeadLetterShowReply>(names.vertex.dlq.show, { seq: acmeSeq });
    assert.equal(acme.seq, acmeSeq);
    assert.equal(acme.subject, names.task.store("company"));
    assert.equal(acme.stream, names.streams.STORE);
    assert.ok(acme.streamSeq > 0);
    assert.equal(acme.code, "NOT_FOUND");
    assert.match(acme.message, /unknown type "company" \(known: website\)/);
    assert.equal(acme.contentType, CONTENT_TYPE_PROTOBUF);
    assert.equal(acme.payloadType, "RecordBatches");
    assert.equal(acme.payloadError, "");
    assert.equal(acme.payloadRaw, "", "no raw bytes when the payload decoded");
    assert.deepEqual(acme.payload, {
      batches: [
        {
          id: "poison-1",
          type: "company",
          source: "manual",
          query: "dlq-test",
          taskId: "poison-1",
          fetchedAt: FETCHED_AT,
          records: [{ name: "ACME" }],
          firstSeq: 0,
        },
      ],
    });

    const globex = await ok<DeadLetterShowReply>(names.vertex.dlq.show, { seq: globexSeq });
    assert.equal(globex.contentType, "application/json");
    assert.deepEqual((globex.payload as { batches: { records: unknown }[] }).batches[0].records, [{ name: "Globex" }]);
  });

  it("falls back to base64 when a payload does not decode, and purges by seq", async () => {
    const h = makeHeaders();
    h.set("Content-Type", CONTENT_TYPE_PROTOBUF);
    const garbage = new Uint8Array([0x0a, 0x7f, 0x01]); // field 1 claims 127 bytes, 1 follows
    const letter = codec("DeadLetter").encode({
      stream: names.streams.STORE,
      subject: names.task.store("company"),
      streamSeq: 1,
      deliveries: 1,
      errorCode: "BAD_REQUEST",
      errorMessage: "truncated",
      payload: garbage,
      contentType: CONTENT_TYPE_PROTOBUF,
    });
    const ack = await js.publish(names.dlq(names.streams.STORE), letter, {
      headers: h,
      msgID: `dlq-test-${Date.now()}`,
    });
    const shown = await ok<DeadLetterShowReply>(names.vertex.dlq.show, { seq: ack.seq });
    assert.equal(shown.payload, null);
    assert.equal(shown.payloadRaw, Buffer.from(garbage).toString("base64"));
    assert.match(shown.payloadError, /not a RecordBatches in application\/x-protobuf: .*malformed protobuf/);

    assert.deepEqual(
      await ok<DeadLetterPurgeReply>(names.vertex.dlq.purge, { seqs: [ack.seq], type: "gadget" }),
      { purged: 0 },
      "seqs and fields both apply",
    );
    assert.deepEqual(await ok<DeadLetterPurgeReply>(names.vertex.dlq.purge, { seqs: [ack.seq] }), { purged: 1 });
    assert.equal((await ask(names.vertex.dlq.show, { seq: ack.seq })).status, 404);
  });

  it("answers 404 for an unknown seq and 400 saying what to fix for bad filters", async () => {
    const unknown = await ask(names.vertex.dlq.show, { seq: 999_999 });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.error?.code, "NOT_FOUND");
    assert.match(unknown.error!.message, /no dead letter with seq 999999/);
    const noSeq = await ask(names.vertex.dlq.show, {});
    assert.equal(noSeq.status, 400);
    assert.match(noSeq.error!.message, /give the DLQ sequence/);

    const cases: [string, object, RegExp][] = [
      [names.vertex.dlq.list, { subject: `${prefix}.>.store` }, /">" may only be the last token/],
      [names.vertex.dlq.list, { subject: `${prefix}..store` }, /empty token/],
      [names.vertex.dlq.list, { subject: `${prefix}.task.st*` }, /wildcards must be whole tokens/],
      [names.vertex.dlq.list, { subject: "a b" }, /whitespace/],
      [names.vertex.dlq.list, { code: "NOTFOUND" }, /unknown error code "NOTFOUND"; use one of .*NOT_FOUND/],
      [
        names.vertex.dlq.list,
        { stream: "STORES" },
        /unknown stream "STORES"; use one of FETCH, FETCHED, AGGREGATE, STORE/,
      ],
      [names.vertex.dlq.list, { type: "a.b" }, /type: "a\.b" is not a name/],
      [names.vertex.dlq.list, { limit: 5000 }, /limit 5000: list between 0/],
      [names.vertex.dlq.list, { sujbect: "x" }, /sujbect: unknown field/],
      [names.vertex.dlq.replay, { subject: `${prefix}.>.x` }, /">" may only be the last token/],
      [names.vertex.dlq.purge, { subject: ">.x" }, /">" may only be the last token/],
      [names.vertex.dlq.purge, { seqs: [0] }, /0 is not a DLQ sequence/],
    ];
    for (const [subject, body, message] of cases) {
      const a = await ask(subject, body);
      assert.equal(a.status, 400, `${subject} ${JSON.stringify(body)}`);
      assert.equal(a.error?.code, "BAD_REQUEST");
      assert.match(a.error!.message, message);
    }
    assert.equal((await list()).total, 3, "refused requests change nothing");
  });

  it("purges only what the filter names", async () => {
    assert.deepEqual(await ok<DeadLetterPurgeReply>(names.vertex.dlq.purge, { type: "gadget" }), { purged: 1 });
    const left = await list();
    assert.equal(left.total, 2);
    assert.deepEqual(
      left.groups.map((g) => g.type),
      ["company"],
    );
  });

  it("replays like a new message: while the type is still undeclared the letters come back as new ones", async () => {
    const r = await ok<DeadLetterReplayReply>(names.vertex.dlq.replay, { type: "company" });
    assert.deepEqual(r, { replayed: 2, failed: 0, failures: [] });
    const back = await eventually("the letters dead-lettered again", async () => {
      const l = await list({ limit: 10 });
      return l.total === 2 && l.letters.every((x) => x.seq > globexSeq) ? l : undefined;
    });
    assert.deepEqual(
      back.letters.map((l) => l.message.match(/unknown type "company"/) !== null),
      [true, true],
    );
    assert.equal((await ask(names.vertex.dlq.show, { seq: acmeSeq })).status, 404, "a replayed letter is gone");
  });

  it("replays by type once the type is declared: the records are stored and the DLQ is empty", async () => {
    await data!.stop();
    data = await startData(true);

    const missing = await ok<DeadLetterReplayReply>(names.vertex.dlq.replay, { seqs: [999_999] });
    assert.equal(missing.replayed, 0);
    assert.deepEqual(
      missing.failures.map((f) => [f.seq, f.code]),
      [[999_999, "NOT_FOUND"]],
    );

    const r = await ok<DeadLetterReplayReply>(names.vertex.dlq.replay, { type: "company" });
    assert.deepEqual(r, { replayed: 2, failed: 0, failures: [] });
    await eventually("both records stored", async () =>
      (await dumpCount("company", { name: "ACME" })) === 1 && (await dumpCount("company", { name: "Globex" })) === 1
        ? true
        : undefined,
    );
    const jsm = await jetstreamManager(nc);
    await eventually("the STORE stream drained", async () =>
      (await jsm.streams.info(names.streams.STORE)).state.messages === 0 ? true : undefined,
    );
    assert.deepEqual(await list({ limit: 10 }), { total: 0, groups: [], letters: [], moreGroups: 0 });
    assert.equal((await jsm.streams.info(names.streams.DLQ)).state.messages, 0);
  });

  it("purges everything with an empty filter", async () => {
    await publishDurable(js, names.task.store("gizmo"), "RecordBatches", batch("poison-4", "gizmo", { name: "G" }), {
      msgID: "poison-4",
    });
    await publishDurable(
      js,
      names.task.store("doohickey"),
      "RecordBatches",
      batch("poison-5", "doohickey", { name: "D" }),
      { msgID: "poison-5" },
    );
    await eventually("two more letters", async () => ((await list()).total === 2 ? true : undefined));
    assert.deepEqual(await ok<DeadLetterPurgeReply>(names.vertex.dlq.purge, {}), { purged: 2 });
    assert.equal((await list()).total, 0);
  });

  it("scans past one pull batch and over gaps left by deleted letters", async () => {
    const h = makeHeaders();
    h.set("Content-Type", CONTENT_TYPE_PROTOBUF);
    const seqs: number[] = [];
    for (let i = 0; i < 600; i++) {
      const body = codec("DeadLetter").encode({
        stream: names.streams.FETCHED,
        subject: names.task.fetched(`src${i % 3}`),
        streamSeq: i + 1,
        deliveries: 1,
        errorCode: "BAD_REQUEST",
        errorMessage: `bad answer ${i}`,
        payload: new Uint8Array(0),
        contentType: CONTENT_TYPE_PROTOBUF,
      });
      seqs.push(
        (await js.publish(names.dlq(names.streams.FETCHED), body, { headers: h, msgID: `bulk-${prefix}-${i}` })).seq,
      );
    }
    const jsm = await jetstreamManager(nc);
    const gone = seqs.filter((_, i) => i % 10 === 0);
    for (const seq of gone) await jsm.streams.deleteMessage(names.streams.DLQ, seq, false);

    const all = await list({ stream: "FETCHED", limit: 1000 });
    assert.equal(all.total, 540);
    // seqs[0] (src0) is gone, so src1 holds the oldest letter now
    assert.deepEqual(
      all.groups.map((g) => [g.type, g.count, g.oldestSeq]),
      [
        ["src1", 180, seqs[1]],
        ["src2", 180, seqs[2]],
        ["src0", 180, seqs[3]],
      ],
    );
    assert.deepEqual(
      all.letters.map((l) => l.seq),
      seqs.filter((q) => !gone.includes(q)),
      "every letter once, oldest first, gaps skipped",
    );

    assert.deepEqual(await ok<DeadLetterPurgeReply>(names.vertex.dlq.purge, { subject: names.task.fetched("src1") }), {
      purged: 180,
    });
    assert.deepEqual(await ok<DeadLetterPurgeReply>(names.vertex.dlq.purge, {}), { purged: 360 });
    assert.equal((await jsm.streams.info(names.streams.DLQ)).state.messages, 0);
  });
  it("parks one bad record of a batch alone, naming its field, stores the other 99, and replays it as a batch of one", async () => {
    const records = Array.from({ length: 100 }, (_, i) => ({
      domain: `r${i}.percord`,
      title: `site ${i}`,
      rank: String(i),
    }));
    records[37] = { domain: "r37.percord", title: "bad", rank: "not a number" };
    await publishDurable(
      js,
      names.task.store("website"),
      "RecordBatches",
      {
        batches: [
          {
            id: "percord",
            type: "website",
            source: "manual",
            query: "dlq-test",
            taskId: "percord",
            fetchedAt: FETCHED_AT,
            records,
            firstSeq: 0,
          },
        ],
      },
      { msgID: "percord" },
    );
    const letters = await eventually("the bad record's letter", async () => {
      const l = await list({ type: "website", limit: 10 });
      return l.total === 1 ? l : undefined;
    });
    const letter = letters.letters[0];
    assert.equal(letter.code, "BAD_REQUEST");
    assert.match(letter.message, /rank/, "the error names the field");
    await eventually("the 99 good records stored", async () => {
      // Ten at a time: a count reads every day bucket of the dump's TTL.
      for (let i = 0; i < records.length; i += 10) {
        const counts = await Promise.all(
          records
            .slice(i, i + 10)
            .map((r) => (r.domain === "r37.percord" ? 1 : dumpCount("website", { domain: r.domain }))),
        );
        if (!counts.every((c) => c === 1)) return undefined;
      }
      return true;
    });
    assert.equal(await dumpCount("website", { domain: "r37.percord" }), 0, "the bad record is not stored");

    const shown = await ok<DeadLetterShowReply>(names.vertex.dlq.show, { seq: letter.seq });
    const parked = shown.payload as { batches: { records: unknown[]; taskId: string }[] };
    assert.equal(parked.batches.length, 1);
    assert.deepEqual(parked.batches[0].records, [records[37]], "the letter holds the bad record alone");
    assert.equal(parked.batches[0].taskId, "percord", "with its batch's provenance");
    assert.equal(
      (parked.batches[0] as { firstSeq?: number }).firstSeq,
      37,
      "and its position in the answer, so a fixed replay lands on its own row",
    );

    // Replayed as it is, it fails again on its own and parks again; the good rows are untouched.
    assert.deepEqual(await ok<DeadLetterReplayReply>(names.vertex.dlq.replay, { seqs: [letter.seq] }), {
      replayed: 1,
      failed: 0,
      failures: [],
    });
    const again = await eventually("parked again", async () => {
      const l = await list({ type: "website", limit: 10 });
      return l.total === 1 && l.letters[0].seq !== letter.seq ? l : undefined;
    });
    assert.match(again.letters[0].message, /rank/);
    assert.deepEqual(await ok<DeadLetterPurgeReply>(names.vertex.dlq.purge, {}), { purged: 1 });
  });
  it("keeps every record of one entity in one answer, and a redelivery rewrites the same rows", async () => {
    const multi = (msgID: string) =>
      publishDurable(
        js,
        names.task.store("website"),
        "RecordBatches",
        {
          batches: [
            {
              id: "multi",
              type: "website",
              source: "manual",
              query: "dlq-test",
              taskId: "multi",
              fetchedAt: FETCHED_AT,
              records: ["first", "second", "third"].map((title) => ({ domain: "same.multi", title })),
              firstSeq: 0,
            },
            {
              // A record travelling alone at position 3 of the same answer (as a replayed letter does).
              id: "multi",
              type: "website",
              source: "manual",
              query: "dlq-test",
              taskId: "multi",
              fetchedAt: FETCHED_AT,
              records: [{ domain: "same.multi", title: "fourth" }],
              firstSeq: 3,
            },
          ],
        },
        { msgID },
      );
    await multi("multi-1");
    await eventually("four rows of one entity", async () =>
      (await dumpCount("website", { domain: "same.multi" })) === 4 ? true : undefined,
    );
    // The same answer again under another message id, as a republish after a lost ack would be.
    await multi("multi-2");
    await eventually("the redelivery consumed", async () => {
      const info = await (await jetstreamManager(nc)).consumers.info(names.streams.STORE, names.consumers.store);
      return info.num_pending === 0 && info.num_ack_pending === 0 ? true : undefined;
    });
    assert.equal(await dumpCount("website", { domain: "same.multi" }), 4, "rewritten in place, not added");
    const { records } = await ok<{ records: { title: string; seq: number }[] }>(names.data("read", "dump", "website"), {
      criteria: { domain: "same.multi" },
    });
    assert.deepEqual(
      records.map((r) => [r.seq, r.title]).sort((a, b) => Number(a[0]) - Number(b[0])),
      [
        [0, "first"],
        [1, "second"],
        [2, "third"],
        [3, "fourth"],
      ],
    );
  });
  it("counts and lists fields a type does not declare (data.drift, /metrics), and stores the rest", async () => {
    await publishDurable(
      js,
      names.task.store("website"),
      "RecordBatches",
      {
        batches: [
          {
            id: "drift-1",
            type: "website",
            source: "manual",
            query: "dlq-test",
            taskId: "drift-1",
            fetchedAt: FETCHED_AT,
            records: [
              { domain: "a.drift", title: "A", country: "NL" },
              { domain: "b.drift", title: "B", country: "DE", score: 3 },
            ],
            firstSeq: 0,
          },
        ],
      },
      { msgID: "drift-1" },
    );
    await eventually("both stored", async () =>
      (await dumpCount("website", { domain: "a.drift" })) === 1 &&
      (await dumpCount("website", { domain: "b.drift" })) === 1
        ? true
        : undefined,
    );
    // Drift is recorded after the rows, before the message is acked.
    const drift = await eventually("both fields recorded", async () => {
      const d = await ok<{ fields: { field: string; exampleType: string }[] }>(names.dataDrift("website"), {});
      return d.fields.length === 2 ? d : undefined;
    });
    assert.deepEqual(
      drift.fields.map((f) => [f.field, f.exampleType]),
      [
        ["country", "string"],
        ["score", "number"],
      ],
    );
    const metrics = await (await fetch(`http://127.0.0.1:${data!.probePort}/metrics`)).text();
    assert.match(metrics, /machina_data_undeclared_fields_total\{type="website",field="country"[^}]*\} 2/);
    assert.match(metrics, /machina_data_undeclared_fields_total\{type="website",field="score"[^}]*\} 1/);
    assert.equal((await ask(names.dataDrift("nosuch"), {})).status, 404);

    const schema = await ok<{ type: string; version: number; history: { definition: { fields: object } }[] }>(
      names.dataSchema("website"),
      {},
    );
    assert.equal(schema.type, "website");
    assert.ok(schema.version >= 1);
    assert.equal(schema.history.length, schema.version, "every version, newest first");
    assert.equal((schema.history[0].definition.fields as Record<string, string>).domain, "text");
    assert.equal((await ask(names.dataSchema("nosuch"), {})).status, 404);
  });
});
