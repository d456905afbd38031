// Covers @machina/subjects: meshNames defaults and prefixes, stream subject filters not overlapping, token checks, tail.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DATA_OPS, SERVICES, assertName, meshNames } from "@machina/subjects";
import type { MeshNames } from "@machina/subjects";

/** NATS subject matching: `*` is one token, `>` one or more trailing tokens. */
function matches(filter: string, subject: string): boolean {
  const f = filter.split(".");
  const s = subject.split(".");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === ">") return s.length > i;
    if (i >= s.length) return false;
    if (f[i] !== "*" && f[i] !== s[i]) return false;
  }
  return f.length === s.length;
}

type StreamKey = keyof MeshNames["streamSubjects"];
const STREAMS: StreamKey[] = ["FETCH", "FETCHED", "AGGREGATE", "STORE", "DLQ"];

/** Every concrete subject the mesh uses, with the stream that must capture it (or null). */
function concreteSubjects(n: MeshNames): { subject: string; stream: StreamKey | null }[] {
  const out: { subject: string; stream: StreamKey | null }[] = [];
  // names chosen to look like each other's prefixes: "fetch" vs "fetched", "store" vs "stores"
  for (const x of ["s", "fetch", "fetched", "store", "aggregate", "dlq", "web_site"]) {
    out.push({ subject: n.task.fetch(x, x, `lead ${x}.com`), stream: "FETCH" });
    out.push({ subject: n.task.fetched(x), stream: "FETCHED" });
    out.push({ subject: n.task.aggregate(x), stream: "AGGREGATE" });
    out.push({ subject: n.task.aggregatePartition(x, 3), stream: "AGGREGATE" });
    out.push({ subject: n.task.store(x), stream: "STORE" });
    out.push({ subject: n.aggregateSave(x), stream: null });
    out.push({ subject: n.computeGet(x), stream: null });
    for (const op of DATA_OPS) out.push({ subject: n.data(op, "clean", x), stream: null });
  }
  for (const s of Object.values(n.streams)) out.push({ subject: n.dlq(s), stream: "DLQ" });
  for (const s of Object.values(n.fetch)) out.push({ subject: s, stream: null });
  out.push(
    { subject: n.invoke.fire, stream: null },
    { subject: n.invoke.buildQuerySet, stream: null },
    { subject: n.invoke.ledger("get"), stream: null },
  );
  out.push(
    { subject: n.vertex.connect("processor"), stream: null },
    { subject: n.vertex.nodes, stream: null },
    { subject: n.vertex.stats, stream: null },
  );
  for (const s of Object.values(n.config)) if (typeof s === "string") out.push({ subject: s, stream: null });
  for (const svc of SERVICES) out.push({ subject: n.config.validate(svc), stream: null });
  for (const svc of SERVICES) out.push({ subject: n.config.defaults(svc), stream: null });
  out.push({ subject: n.cacheInvalidate, stream: null });
  // Operator requests on dead letters must not be captured by the DLQ stream itself.
  for (const s of Object.values(n.vertex.dlq)) out.push({ subject: s, stream: null });
  return out;
}

describe("subject matcher used by these tests", () => {
  it("follows NATS wildcard rules", () => {
    assert.equal(matches("a.b.>", "a.b.c"), true);
    assert.equal(matches("a.b.>", "a.b.c.d"), true);
    assert.equal(matches("a.b.>", "a.b"), false);
    assert.equal(matches("a.*.c", "a.x.c"), true);
    assert.equal(matches("a.*.c", "a.x.y.c"), false);
    assert.equal(matches("a.b", "a.b.c"), false);
    assert.equal(matches("a.b.c", "a.b"), false);
    assert.equal(matches("a.fetch.>", "a.fetched.x"), false);
  });
});

describe("meshNames", () => {
  it("uses the machina prefix by default", () => {
    const n = meshNames();
    assert.equal(n.prefix, "machina");
    assert.equal(n.fetch.fetch, "machina.fetch.fetch");
    assert.equal(n.invoke.fire, "machina.invoke.fire");
    assert.match(
      n.task.fetch("sitestats", "site", "example.com"),
      /^machina\.task\.fetch\.sitestats\.site\.[A-Za-z0-9_-]{22}$/,
    );
    assert.equal(n.task.fetch("s", "q", "a.b c"), n.task.fetch("s", "q", "a.b c"), "a lead's token is stable");
    assert.notEqual(n.task.fetch("s", "q", "a"), n.task.fetch("s", "q", "b"));
    assert.equal(n.task.fetchOf("sitestats"), "machina.task.fetch.sitestats.>");
    assert.equal(n.consumers.fetch("sitestats"), "fetch-sitestats");
    assert.equal(n.data("read", "clean", "web_site"), "machina.data.read.clean.web_site");
    assert.equal(n.streams.FETCH, "MACHINA_FETCH");
    assert.equal(n.buckets.limiter, "machina_limiter");
    assert.equal(n.queue("fetch"), "machina-fetch");
    assert.equal(n.serviceRoot("vertex"), "machina.vertex");
    assert.equal(n.dlq(n.streams.FETCH), "machina.dlq.MACHINA_FETCH");
  });

  it("changes every subject, stream and bucket with a custom prefix", () => {
    const a = meshNames("machina");
    const b = meshNames("staging2");
    assert.equal(b.prefix, "staging2");
    assert.equal(b.streams.FETCHED, "STAGING2_FETCHED");
    const subjectsA = concreteSubjects(a).map((x) => x.subject);
    const subjectsB = concreteSubjects(b).map((x) => x.subject);
    for (const s of subjectsB) assert.ok(s.startsWith("staging2."), s);
    for (const s of subjectsB) assert.ok(!subjectsA.includes(s), s);
    // neither network's streams capture the other's subjects
    for (const k of STREAMS) {
      for (const s of subjectsA) assert.equal(matches(b.streamSubjects[k], s), false, `${b.streamSubjects[k]} vs ${s}`);
      for (const s of subjectsB) assert.equal(matches(a.streamSubjects[k], s), false, `${a.streamSubjects[k]} vs ${s}`);
      assert.notEqual(a.streams[k], b.streams[k]);
    }
    for (const k of ["limiter", "config", "nodes"] as const) assert.notEqual(a.buckets[k], b.buckets[k]);
    for (const svc of SERVICES) {
      assert.notEqual(a.queue(svc), b.queue(svc));
      assert.equal(b.serviceRoot(svc), `staging2.${svc}`);
    }
    for (const k of ["aggregateSave", "computeGet", "vertexConnect"] as const)
      assert.ok(b.any[k].startsWith("staging2."));
    assert.equal(b.cacheInvalidate, "staging2.cache.invalidate");
  });

  it("derives names that NATS accepts: streams and buckets are single tokens without dots or wildcards", () => {
    for (const n of [meshNames(), meshNames("ab9")]) {
      for (const name of [
        ...Object.values(n.streams),
        ...Object.values(n.buckets),
        n.consumers.fetch("sitestats"),
        n.consumers.fetched,
        n.consumers.aggregate,
        n.consumers.aggregatePartition("web_site", 7),
        n.consumers.store,
      ]) {
        assert.match(name, /^[A-Za-z0-9_-]+$/, name);
      }
      for (const k of STREAMS) assert.match(n.streamSubjects[k], new RegExp(`^${n.prefix}\\.[a-z.]+\\.>$`));
    }
  });

  it("keeps the shared aggregate consumer off partition subjects, so both can consume the work-queue stream", () => {
    const n = meshNames();
    assert.equal(n.task.aggregatePartition("website", 3), "machina.task.aggregate.website.3");
    assert.equal(matches(n.task.aggregateAll, n.task.aggregate("website")), true);
    assert.equal(matches(n.task.aggregateAll, n.task.aggregatePartition("website", 3)), false);
    assert.equal(n.consumers.aggregatePartition("website", 3), "aggregate-website-3");
    assert.equal(n.buckets.aggregateState, "machina_aggregate_state");
    for (const bad of [-1, 1.5, 10_000]) assert.throws(() => n.task.aggregatePartition("website", bad), /partition/);
  });

  it("captures every task subject in exactly its own stream and no request/reply subject in any", () => {
    const n = meshNames();
    for (const { subject, stream } of concreteSubjects(n)) {
      const hits = STREAMS.filter((k) => matches(n.streamSubjects[k], subject));
      assert.deepEqual(hits, stream ? [stream] : [], subject);
    }
    // the motivating case: FETCH must not swallow FETCHED's subjects
    assert.equal(matches(n.streamSubjects.FETCH, "machina.task.fetched.y"), false);
    assert.equal(matches(n.streamSubjects.FETCHED, "machina.task.fetch.y"), false);
  });

  it("stream filters are pairwise disjoint", () => {
    const n = meshNames();
    for (const a of STREAMS) {
      for (const b of STREAMS) {
        if (a === b) continue;
        // two `p.x.y.>` filters overlap only if one's literal part is a token-prefix of the other's
        const la = n.streamSubjects[a].split(".").slice(0, -1);
        const lb = n.streamSubjects[b].split(".").slice(0, -1);
        const shorter = la.length <= lb.length ? la : lb;
        const longer = la.length <= lb.length ? lb : la;
        assert.equal(
          shorter.every((t, i) => t === longer[i]),
          false,
          `${n.streamSubjects[a]} overlaps ${n.streamSubjects[b]}`,
        );
      }
    }
  });

  it("wildcard endpoint subjects match the concrete ones and tail recovers the variable tokens", () => {
    const n = meshNames();
    const save = n.aggregateSave("web_site");
    assert.equal(matches(n.any.aggregateSave, save), true);
    assert.deepEqual(n.tail(save, 1), ["web_site"]);
    for (const op of DATA_OPS) {
      const s = n.data(op, "dump", "page");
      assert.equal(matches(n.any.data(op), s), true, s);
      for (const other of DATA_OPS)
        if (other !== op) assert.equal(matches(n.any.data(other), s), false, `${other} vs ${s}`);
      assert.deepEqual(n.tail(s, 2), ["dump", "page"]);
      assert.equal(matches(n.any.dataKeys, s), false, `keys vs ${s}`);
    }
    const keys = n.dataKeys("page");
    assert.equal(matches(n.any.dataKeys, keys), true);
    for (const op of DATA_OPS) assert.equal(matches(n.any.data(op), keys), false, `${op} vs ${keys}`);
    assert.deepEqual(n.tail(keys, 1), ["page"]);
    for (const op of ["failed", "retry"] as const) {
      const c = n.dataClean(op, "page");
      assert.equal(c, `machina.data.clean.${op}.page`);
      assert.equal(matches(n.any.dataClean(op), c), true);
      assert.equal(matches(n.any.dataClean(op === "failed" ? "retry" : "failed"), c), false);
      for (const d of DATA_OPS) assert.equal(matches(n.any.data(d), c), false, `${d} vs ${c}`);
      assert.deepEqual(n.tail(c, 1), ["page"]);
    }
    assert.equal(matches(n.any.computeGet, n.computeGet("top_sites")), true);
    assert.deepEqual(n.tail(n.computeGet("top_sites"), 1), ["top_sites"]);
    assert.equal(matches(n.any.vertexConnect, n.vertex.connect("scheduler")), true);
    assert.deepEqual(n.tail(n.vertex.connect("scheduler"), 1), ["scheduler"]);
  });

  it("tail returns the last n tokens, or all when n exceeds them", () => {
    const n = meshNames();
    assert.deepEqual(n.tail("a.b.c.d", 2), ["c", "d"]);
    assert.deepEqual(n.tail("a.b", 5), ["a", "b"]);
    assert.deepEqual(n.tail("a.b.c", 1), ["c"]);
  });

  it("rejects a prefix or variable token that is not one subject token", () => {
    // Upper case, '-' and '_' would make distinct prefixes share stream names (A_B_FETCH).
    for (const bad of ["", "a.b", "a b", "a*", ">", "ä", "x\n", "a-b", "a_b", "Machina", "9lives"]) {
      assert.throws(
        () => meshNames(bad),
        (e: unknown) => e instanceof TypeError && /mesh\.prefix/.test(e.message),
        JSON.stringify(bad),
      );
    }
    const n = meshNames();
    assert.throws(() => n.task.fetch("a.b", "q", "l"), /source: "a\.b" is not a name/);
    assert.throws(() => n.task.fetch("s", "q.x", "l"), /query: "q\.x" is not a name/);
    assert.throws(() => n.task.fetched("*"), /source/);
    assert.throws(() => n.task.aggregate(">"), /entity type/);
    assert.throws(() => n.task.store(""), /entity type/);
    assert.throws(() => n.aggregateSave("x y"), /entity type/);
    assert.throws(() => n.data("read", "clean", "a.b"), /entity type/);
    assert.throws(() => n.dataKeys("a.*"), /entity type/);
    assert.throws(() => n.computeGet("a.*"), /computation/);
    assert.throws(() => n.invoke.ledger("get.all"), /ledger op/);
    // One name rule: a type fetch would accept must be one data accepts, so upper case is refused here too.
    assert.throws(() => n.data("read", "clean", "Website"), /write "website"/);
  });
});

describe("assertName", () => {
  it("returns valid names unchanged", () => {
    for (const ok of ["a", "a_1b", "website", "web_site_2", "a".repeat(42)]) assert.equal(assertName("x", ok), ok);
  });

  it("throws a TypeError naming what and the value, and suggests the lower-case spelling", () => {
    assert.throws(
      () => assertName("source", "my.source"),
      (e: unknown) =>
        e instanceof TypeError && e.message.startsWith('source: "my.source" is not a name: use a lower-case letter'),
    );
    assert.throws(() => assertName("entity type", "Web-Site"), /write "web_site"/);
    for (const bad of [
      "",
      "a.b",
      "a b",
      "*",
      ">",
      "a>",
      "tab\t",
      "slash/",
      "A",
      "web-site",
      "1a",
      "_a",
      "a".repeat(43),
    ]) {
      assert.throws(() => assertName("t", bad), TypeError, JSON.stringify(bad));
    }
  });
});
