// Covers the NATS users libs/subjects derives (permissions.ts, auth-config.ts): who may publish
// to which stream, who may write which bucket, that every list follows the mesh prefix, and the
// nats-server block and password rule the tools use. The server itself enforces them in
// test/integration/nats-auth.test.ts.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  NATS_USERS,
  SERVICES,
  jsApi,
  kvKeys,
  kvStream,
  meshNames,
  meshPermissions,
  passwordEnv,
  passwordProblem,
  renderAuthorization,
  servicePermissions,
} from "@machina/subjects";
import type { ServiceName } from "@machina/subjects";

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

const n = meshNames("machina");
const perms = meshPermissions(n);
const mayPublish = (s: ServiceName, subject: string) => perms[s].publish.some((f) => matches(f, subject));
const maySubscribe = (s: ServiceName, subject: string) => perms[s].subscribe.some((f) => matches(f, subject));
const who = (subject: string) => SERVICES.filter((s) => mayPublish(s, subject));

describe("NATS permissions per service", () => {
  it("lets only invoke (tasks) and vertex (replays) publish to the FETCH stream", () => {
    assert.deepEqual(who(n.task.fetch("sitestats", "site", "example.com")), ["invoke", "vertex"]);
    assert.ok(!mayPublish("compute", n.task.fetch("sitestats", "site", "x")));
  });

  it("gives each work stream the publishers the pipeline has, and dead letters to its consumer", () => {
    assert.deepEqual(who(n.task.fetched("sitestats")), ["fetch", "vertex"]);
    assert.deepEqual(who(n.task.aggregate("website")), ["invoke", "vertex"]);
    assert.deepEqual(who(n.task.aggregatePartition("website", 1)), ["aggregate", "vertex"]);
    // fetch: the record-less batch closing a paginated incremental task.
    assert.deepEqual(who(n.task.store("website")), ["fetch", "aggregate", "vertex"]);
    assert.deepEqual(who(n.dlq(n.streams.FETCH)), ["fetch"]);
    assert.deepEqual(who(n.dlq(n.streams.FETCHED)), ["invoke"]);
    assert.deepEqual(who(n.dlq(n.streams.AGGREGATE)), ["aggregate"]);
    assert.deepEqual(who(n.dlq(n.streams.STORE)), ["data"]);
  });

  it("lets only vertex write the config chain, and every service read it", () => {
    assert.deepEqual(who(`$KV.${n.buckets.config}.head.abc`), ["vertex"]);
    for (const s of SERVICES) {
      assert.ok(mayPublish(s, jsApi.directGet(kvStream(n.buckets.config))[0]), `${s} reads the chain`);
      assert.ok(!mayPublish(s, jsApi.streamCreate(kvStream(n.buckets.config))), `${s} may not create it (admin does)`);
    }
  });

  it("lets no service create or change a pipeline stream (the admin bootstrap does)", () => {
    for (const s of SERVICES)
      for (const stream of Object.values(n.streams)) {
        assert.ok(!mayPublish(s, jsApi.streamCreate(stream)), `${s} creates ${stream}`);
        assert.ok(!mayPublish(s, jsApi.streamUpdate(stream)), `${s} updates ${stream}`);
        assert.ok(mayPublish(s, jsApi.streamInfo(stream)), `${s} checks ${stream} at start`);
      }
  });

  it("gives every bucket but the config chain an owner that creates it, and no one else writes it", () => {
    const owners: Record<string, ServiceName[]> = {};
    for (const [key, bucket] of Object.entries(n.buckets)) {
      if (key === "config") continue;
      owners[key] = SERVICES.filter((s) => mayPublish(s, jsApi.streamCreate(kvStream(bucket))));
      assert.ok(owners[key].length > 0, `${key} has no owner`);
      assert.deepEqual(who(`$KV.${bucket}.k`), owners[key], `${key}: writers are its owners`);
    }
    assert.deepEqual(owners.limiter, ["fetch"]);
    assert.deepEqual(owners.fetchCursors, ["fetch", "data"]);
    assert.deepEqual(owners.invokeTicks, ["invoke"]);
    assert.deepEqual(owners.nodes, ["vertex"]);
  });

  it("lets a service make only its own consumers, with their filters", () => {
    const create = (stream: string, name: string, filter: string) => jsApi.consumerCreate(stream, name, filter);
    assert.ok(mayPublish("fetch", create(n.streams.FETCH, "fetch-sitestats", n.task.fetchOf("sitestats"))));
    assert.ok(
      !mayPublish("fetch", create(n.streams.FETCH, "greedy", n.streamSubjects.FETCH)),
      "one source per consumer",
    );
    assert.ok(!mayPublish("fetch", create(n.streams.STORE, "data-dump", n.streamSubjects.STORE)));
    assert.ok(mayPublish("data", create(n.streams.STORE, n.consumers.store, n.streamSubjects.STORE)));
    assert.ok(!mayPublish("data", create(n.streams.STORE, "other", n.streamSubjects.STORE)));
    assert.ok(
      mayPublish(
        "aggregate",
        create(n.streams.AGGREGATE, "aggregate-website-1", n.task.aggregatePartition("website", 1)),
      ),
    );
    assert.ok(mayPublish("aggregate", create(n.streams.AGGREGATE, n.consumers.aggregate, n.task.aggregateAll)));
    assert.ok(!mayPublish("compute", jsApi.msgNext(n.streams.FETCH, "fetch-sitestats")));
  });

  it("serves each service's endpoints and inbox to it alone", () => {
    const endpoints: Record<ServiceName, string> = {
      fetch: n.fetch.fetch,
      invoke: n.invoke.fire,
      aggregate: n.aggregateSave("website"),
      data: n.data("read", "clean", "website"),
      compute: n.computeGet("latest"),
      vertex: n.vertex.nodes,
    };
    for (const s of SERVICES) {
      assert.deepEqual(
        SERVICES.filter((x) => maySubscribe(x, endpoints[s])),
        [s],
        `${endpoints[s]}`,
      );
      assert.deepEqual(
        SERVICES.filter((x) => maySubscribe(x, `${n.inbox(s)}.abc.1`)),
        [s],
        `${s}'s inbox`,
      );
      assert.ok(maySubscribe(s, n.config.validate(s)) && !maySubscribe(s, "_INBOX.abc"));
    }
    assert.deepEqual(
      SERVICES.filter((x) => maySubscribe(x, n.config.patch)),
      ["vertex"],
    );
  });

  it("follows the mesh prefix: another mesh's subjects are out of reach", () => {
    const other = servicePermissions(meshNames("staging"), "fetch");
    for (const s of [...other.publish, ...other.subscribe])
      assert.doesNotMatch(s, /machina|MACHINA/, `${s} names the default mesh`);
    assert.ok(other.publish.includes(kvKeys("staging_limiter")));
  });
});

describe("nats-server authorization block", () => {
  const text = renderAuthorization(n);

  it("names every user with a $NATS_PASSWORD_<USER> reference and no password", () => {
    for (const u of NATS_USERS) {
      assert.match(text, new RegExp(`user: "${u}"\\n\\s+password: \\$${passwordEnv(u)}\\n`));
    }
    assert.equal(passwordEnv("fetch"), "NATS_PASSWORD_FETCH");
    assert.equal((text.match(/allow_responses: true/g) ?? []).length, SERVICES.length, "the admin has no limits");
  });

  it("lists exactly the permissions the library derives", () => {
    const fetchPart = text.slice(text.indexOf('user: "fetch"'), text.indexOf('user: "invoke"'));
    const quoted = [...fetchPart.matchAll(/^\s+("[^"]+")$/gm)].map((m) => JSON.parse(m[1]) as string);
    assert.deepEqual(quoted, [...perms.fetch.publish, ...perms.fetch.subscribe]);
  });

  it("accepts only passwords nats-server parses as strings", () => {
    assert.equal(passwordProblem("p3f9a0c1d2e3f4a5b6c7"), null);
    assert.equal(passwordProblem("Abc_def-ghi_jklmn"), null);
    for (const bad of ["3f9a0c1d2e3f4a5b6c7", "short", "has space in it ok", "true", "p3f9a0c1d2e3f4a5b6c7!"])
      assert.match(String(passwordProblem(bad)), /starting with a letter/, bad);
  });
});
