// The example network end to end, driven with the real `nats` CLI: six services up, an
// interactive fetch from the fake API, the durable pipeline from a timer trigger to clean rows
// in Cassandra answered by compute, and bad input answered with typed errors while serving on.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { DIRECTORY_DOMAINS, SITE_DOMAINS, expectedSite, expectedTraffic } from "../fixtures/fake-api/index";
import { eventually as poll } from "../support/eventually";
import { nats, natsReq } from "../support/nats-cli";

const eventually = <T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000) => poll(what, fn, ms, 500);

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const FAKE_API = `http://127.0.0.1:${process.env.MACHINA_FAKE_API_PORT ?? 8787}`;
const testStart = Date.now();

function mesh(cmd: "start" | "stop"): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      "bash",
      [path.join(ROOT, "test/harness/mesh.sh"), cmd],
      {
        env: { ...process.env, MACHINA_DATA_CLEAN_INTERVAL_MS: "1000" },
        timeout: 180_000,
      },
      (err, _out, stderr) => (err ? reject(new Error(`mesh.sh ${cmd} failed: ${stderr}`)) : resolve()),
    );
  });
}

type Latest = { name: string; rows: Array<Record<string, unknown>> };
type Err = { code: string; status: number; message: string; details: Record<string, unknown> };

describe("example network, end to end", { timeout: 300_000 }, () => {
  before(() => mesh("start"));
  after(() => mesh("stop"));

  it("nats micro ls lists all six services", async () => {
    const r = await nats(["micro", "ls", "--json"]);
    const names = new Set((JSON.parse(r.stdout) as Array<{ name: string }>).map((s) => s.name));
    for (const s of ["fetch", "invoke", "aggregate", "data", "compute", "vertex"])
      assert.ok(names.has(s), `${s} missing from micro ls`);
  });

  it("fetch.fetch returns the fake API's data with Meta filled in", async () => {
    const resp = await natsReq<{
      data: { types: Record<string, { records: Array<Record<string, unknown>> }> };
      meta: Record<string, number | string>;
    }>("machina.fetch.fetch", {
      source: "sitestats",
      query: "site",
      lead: { id: "example.com", args: { domain: "example.com" } },
    });
    const site = resp.data.types.website.records[0];
    const want = expectedSite("example.com");
    assert.equal(site.title, want.title);
    assert.equal(site.visits, want.visits);
    assert.equal(resp.meta.source, "sitestats");
    assert.equal(resp.meta.limiterQuota, 10);
    assert.ok(Number(resp.meta.limiterUsage) >= 1);
    assert.ok(Number(resp.meta.end) >= Number(resp.meta.start) && Number(resp.meta.start) >= testStart);
    assert.ok(Number(resp.meta.sourceTime) > 0);
  });

  it("a timer tick flows fetch → invoke → aggregate → data → clean job → compute.get.latest", async () => {
    const domain = "example.org";
    const latest = await eventually("merged record for example.org", async () => {
      const r = await natsReq<Latest | Err>("machina.compute.get.latest", {
        args: { type: "website", key: { domain } },
      });
      if (!("rows" in r)) return undefined;
      const row = r.rows[0];
      // Both sources must have landed, and in this run (not rows left by an earlier one).
      if (row.bounce_rate == null || row.title == null || Date.parse(String(row.merged_at)) < testStart)
        return undefined;
      return row;
    });
    const site = expectedSite(domain);
    const traffic = expectedTraffic(domain);
    assert.equal(latest.title, site.title, "title from sitestats");
    assert.equal(latest.bounce_rate, traffic.bounce_rate, "bounce_rate only traffic knows");
    assert.equal(latest.visits, site.visits, "visits by source priority: sitestats before traffic");
    const stats = (await (await fetch(`${FAKE_API}/_stats`)).json()) as { byPath: Record<string, number> };
    assert.ok(stats.byPath["/v2/traffic/:domain"] >= 1, "the pipeline really called the traffic API");
  });

  it("fetch.quota shows every window of a source and data.count sees the dump rows", async () => {
    type Quota = {
      source: string;
      overQuota: boolean;
      windows: Array<{ perMs: number; usage: number; quota: number }>;
    };
    const q = await natsReq<Quota>("machina.fetch.quota", { source: "sitestats" });
    assert.equal(q.overQuota, false);
    assert.deepEqual(
      q.windows.map((w) => [w.perMs, w.quota]),
      [
        [1000, 10],
        [86_400_000, 5000],
      ],
    );
    assert.ok(q.windows[1].usage >= 2, "the day window counts this run's calls");
    const c = await natsReq<{ count: number }>("machina.data.count.dump.website", {
      criteria: { domain: "example.org" },
    });
    assert.ok(c.count >= 2, "one dump row per source that answered");
    const many = await natsReq<{ count: number; counts: number[] }>("machina.data.count.dump.website", {
      criteriaList: [{ domain: "example.org" }, { domain: "example.org", source: "traffic" }],
    });
    assert.equal(many.counts.length, 2, "one count per criteria");
    assert.ok(many.counts[0] >= 2 && many.counts[1] >= 1 && many.counts[1] < many.counts[0]);
    assert.equal(many.count, many.counts[0] + many.counts[1]);
    const bad = await natsReq<Err>("machina.data.count.dump.company", { criteria: { domain: "x" } });
    assert.equal(bad.code, "NOT_FOUND");
    assert.match(bad.message, /website/, "names the known types");

    // A manual edit through the real service, then cleared; nothing has failed to merge.
    const edited = await natsReq<{ record: { title: string; provenance: Record<string, string> } }>(
      "machina.data.update.clean.website",
      { key: { domain: "example.org" }, alterations: { title: "Edited by hand" } },
    );
    assert.equal(edited.record.title, "Edited by hand");
    assert.equal(edited.record.provenance.title, "manual");
    const cleared = await natsReq<{ record: { title: string } }>("machina.data.update.clean.website", {
      key: { domain: "example.org" },
      clear: ["title"],
    });
    assert.equal(cleared.record.title, "Edited by hand", "cleared fields are merged again by the next run");
    assert.deepEqual(await natsReq("machina.data.clean.failed.website", {}), { failed: [], next: "" });
    assert.deepEqual(await natsReq("machina.data.clean.retry.website", { keys: [{ domain: "example.org" }] }), {
      affected: 0,
    });
  });

  it("aggregate fills a saved null from the website's last value, refuses a keyless record, and says who owns its partitions", async () => {
    // The README's lines: example.com has been fetched by now (the timer test above waited for it).
    const site = expectedSite("example.com");
    await eventually("example.com fetched", async () => {
      const c = await natsReq<{ count: number }>("machina.data.count.dump.website", {
        criteria: { domain: "example.com", source: "sitestats" },
      });
      return c.count >= 1 ? true : undefined;
    });
    const saved = await natsReq<{ ok: boolean; id: string }>("machina.aggregate.save.website", {
      id: `fill-${testStart}`,
      records: [{ domain: "example.com", title: null }],
    });
    assert.deepEqual(saved, { ok: true, id: `fill-${testStart}` });
    const filled = await eventually("the filled row", async () => {
      const r = await natsReq<{ records: Array<Record<string, unknown>> }>("machina.data.read.dump.website", {
        criteria: { domain: "example.com", source: "manual", task_id: `fill-${testStart}` },
        limit: 1,
      });
      return r.records[0];
    });
    assert.equal(filled.title, site.title, "title carried from the last sitestats answer");
    const refused = await natsReq<Err>("machina.aggregate.save.website", {
      id: "no-key",
      records: [{ title: "no domain" }],
    });
    assert.equal(refused.code, "BAD_REQUEST");
    assert.match(refused.message, /record 0: key field domain needs a text, number or boolean value, got nothing/);
    const nope = await natsReq<Err>("machina.aggregate.save.nope", { records: [{ domain: "a.example" }] });
    assert.equal(nope.status, 404);
    assert.match(nope.message, /declared: business, website/);
    const owners = await eventually("aggregate's partitions in vertex.nodes", async () => {
      const n = await natsReq<{ nodes: Array<{ service: string; owns?: string[] }> }>("machina.vertex.nodes", {});
      const owns = n.nodes.filter((x) => x.service === "aggregate").flatMap((x) => x.owns ?? []);
      return owns.length === 2 ? owns.sort() : undefined;
    });
    assert.deepEqual(owners, ["website.0", "website.1"]);
  });

  it("invoke.fire of the same tick is deduplicated by task id", async () => {
    type Fire = { tick: number; tasks: number; duplicates: number };
    // Two fires in one tick of the 1-minute grid; retried if a minute boundary falls between them.
    for (let attempt = 0; attempt < 3; attempt++) {
      const first = await natsReq<Fire>("machina.invoke.fire", { trigger: "refresh" });
      const second = await natsReq<Fire>("machina.invoke.fire", { trigger: "refresh" });
      if (first.tick !== second.tick) continue;
      // 3 leads × (1 sitestats query + 1 traffic query) per tick.
      assert.equal(first.tasks + first.duplicates, 6);
      assert.deepEqual([second.tasks, second.duplicates], [0, 6], "the second fire of a tick publishes nothing new");
      return;
    }
    assert.fail("three minute boundaries in a row fell between two fires");
  });

  it("the changes trigger fetches each category incrementally; its cursor moves to the newest stored change", async () => {
    type Cursors = { cursors: Array<{ lead: string; value: string; initial: string; stored: boolean }> };
    for (const category of ["news", "technology"]) {
      const newest = SITE_DOMAINS.map((d) => expectedSite(d))
        .filter((s) => s.category === category)
        .map((s) => s.updated_at)
        .sort()
        .at(-1)!;
      const cursor = await eventually(`the ${category} cursor stored`, async () => {
        const r = await natsReq<Cursors>("machina.fetch.cursors", {
          source: "sitestats",
          query: "changes",
          lead: category,
        });
        return r.cursors[0]?.stored === true ? r.cursors[0] : undefined;
      });
      assert.equal(new Date(cursor.value).getTime(), new Date(newest).getTime(), `${category}: its newest change`);
      assert.equal(cursor.initial, "2024-01-01T00:00:00Z");
    }
  });

  it("closes the recursive loop: directory → clean businesses → distinct producer → self ledger → sitestats → clean websites", async () => {
    type Rows = { rows: Array<Record<string, unknown>>; next: string };
    // The directory trigger ran at start; its businesses reach clean data through the pipeline.
    const distinct = await eventually("every business website in clean data", async () => {
      const r = await natsReq<Rows | Err>("machina.compute.get.distinct", {
        args: { type: "business", field: "domain" },
      });
      return "rows" in r && r.rows.length === DIRECTORY_DOMAINS.length ? r : undefined;
    });
    assert.deepEqual(
      distinct.rows.map((r) => r.domain),
      [...DIRECTORY_DOMAINS].sort(),
    );
    // A forced discover tick refreshes the self ledger from the producer, then fetches every website in it.
    type Fire = { tasks: number; state: string; tickId: string };
    const fired = await natsReq<Fire>("machina.invoke.fire", { trigger: "discover", force: true });
    assert.equal(fired.state, "done");
    assert.match(fired.tickId, /^discover@\d+\+force$/);
    assert.equal(fired.tasks, DIRECTORY_DOMAINS.length);
    const ledger = await natsReq<{ source: string; total: number; leads: Array<{ id: string }> }>(
      "machina.invoke.ledger.list",
      { name: "business_websites" },
    );
    assert.equal(ledger.source, "self");
    assert.deepEqual(
      ledger.leads.map((l) => l.id),
      [...DIRECTORY_DOMAINS].sort(),
    );
    const domain = DIRECTORY_DOMAINS[0];
    const latest = await eventually(`clean website data for ${domain}`, async () => {
      const r = await natsReq<Latest | Err>("machina.compute.get.latest", {
        args: { type: "website", key: { domain } },
      });
      return "rows" in r && r.rows[0]?.title != null ? r.rows[0] : undefined;
    });
    assert.equal(latest.title, expectedSite(domain).title);
    const triggers = await natsReq<{ triggers: Array<{ name: string; nextFire: number; ledgers: string[] }> }>(
      "machina.invoke.triggers",
      {},
    );
    const discover = triggers.triggers.find((t) => t.name === "discover")!;
    assert.deepEqual(discover.ledgers, ["business_websites"]);
    assert.equal((discover.nextFire - 30_000) % 60_000, 0, "on the minute grid, offset 30 s");
  });

  it("answers malformed JSON, an unknown source and a missing lead field with typed errors, and keeps serving", async () => {
    const malformed = await nats(["req", "machina.fetch.fetch", '{"source": "sitestats",']);
    assert.match(malformed.stdout + malformed.stderr, /Nats-Service-Error-Code: 400/);
    assert.match(malformed.stdout + malformed.stderr, /malformed JSON/);

    const unknown = await natsReq<Err>("machina.fetch.fetch", {
      source: "nope",
      query: "site",
      lead: { id: "x", args: {} },
    });
    assert.equal(unknown.code, "UNKNOWN_SOURCE");
    assert.equal(unknown.status, 404);
    assert.match(unknown.message, /sitestats/, "lists the known sources");

    const missing = await natsReq<Err>("machina.fetch.fetch", {
      source: "sitestats",
      query: "site",
      lead: { id: "lead-7", args: { host: "example.com" } },
    });
    assert.equal(missing.code, "BAD_REQUEST");
    assert.match(missing.message, /domain/);
    assert.match(missing.message, /ledger/);

    const still = await natsReq<{ data: { types: Record<string, unknown> } }>("machina.fetch.fetch", {
      source: "sitestats",
      query: "site",
      lead: { id: "example.net", args: { domain: "example.net" } },
    });
    assert.ok(still.data.types.website, "the service still serves after bad input");
  });

  it("answers 404 naming the known ones for prototype-property names in every subject token and body name, and keeps serving", async () => {
    const tokens = ["constructor", "__proto__", "toString", "valueOf", "hasOwnProperty"];
    const ops = ["create", "read", "readone", "update", "delete", "count"];
    // [subject, body, code, a known name the message must list]
    const probes: Array<[string, unknown, string, RegExp]> = [];
    for (const t of tokens) {
      probes.push([`machina.compute.get.${t}`, { args: {} }, "NOT_FOUND", /latest/]);
      probes.push([`machina.aggregate.save.${t}`, { records: [{ domain: "example.com" }] }, "NOT_FOUND", /website/]);
      for (const op of ops) {
        probes.push([`machina.data.${op}.${t}.website`, {}, "NOT_FOUND", /dump.*clean/]);
        probes.push([`machina.data.${op}.dump.${t}`, {}, "NOT_FOUND", /website/]);
      }
      probes.push([`machina.data.keys.${t}`, {}, "NOT_FOUND", /website/]);
      probes.push([`machina.data.drift.${t}`, {}, "NOT_FOUND", /website/]);
      probes.push([`machina.data.schema.${t}`, {}, "NOT_FOUND", /website/]);
      probes.push([`machina.data.clean.failed.${t}`, {}, "NOT_FOUND", /website/]);
      probes.push([`machina.data.clean.retry.${t}`, {}, "NOT_FOUND", /website/]);
      probes.push([`machina.vertex.connect.${t}`, {}, "NOT_FOUND", /processor.*scheduler/]);
      probes.push([
        "machina.fetch.fetch",
        { source: t, query: "site", lead: { id: "x", args: {} } },
        "UNKNOWN_SOURCE",
        /sitestats/,
      ]);
      probes.push([
        "machina.fetch.fetch",
        { source: "sitestats", query: t, lead: { id: "x", args: {} } },
        "NOT_FOUND",
        /\bsite\b/,
      ]);
      probes.push(["machina.fetch.quota", { source: t }, "UNKNOWN_SOURCE", /sitestats/]);
      probes.push(["machina.fetch.overquota", { source: t }, "UNKNOWN_SOURCE", /sitestats/]);
      probes.push(["machina.invoke.fire", { trigger: t }, "NOT_FOUND", /refresh/]);
      probes.push(["machina.invoke.buildqueryset", { querySet: t }, "NOT_FOUND", /websites_sitestats/]);
      probes.push(["machina.invoke.ledger.get", { name: t }, "NOT_FOUND", /websites/]);
    }
    // A few CLI processes at a time: a hundred at once would starve a 2-core machine into time-outs.
    const answers: Array<Partial<Err>> = new Array(probes.length);
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < probes.length) {
          const i = next++;
          answers[i] = await natsReq<Partial<Err>>(probes[i][0], probes[i][1]);
        }
      }),
    );
    const wrong = probes.flatMap(([subject, body, code, known], i) => {
      const a = answers[i];
      const ok = a.code === code && a.status === 404 && known.test(a.message ?? "");
      return ok ? [] : [`${subject} ${JSON.stringify(body)} → ${JSON.stringify(a)}`];
    });
    assert.deepEqual(wrong, [], `expected 404 naming a known name:\n${wrong.join("\n")}`);

    // Every service still serves good requests.
    const latest = await natsReq<Latest | Err>("machina.compute.get.latest", {
      args: { type: "website", key: { domain: "example.org" } },
    });
    assert.ok("rows" in latest || /no clean row/.test(latest.message), `compute answers: ${JSON.stringify(latest)}`);
    const saved = await natsReq<{ ok: boolean }>("machina.aggregate.save.website", {
      id: "e2e-proto-check",
      records: [{ domain: "proto-check.example", title: "ok" }],
    });
    assert.equal(saved.ok, true);
    const count = await natsReq<{ count?: number }>("machina.data.count.dump.website", {
      criteria: { domain: "example.org" },
    });
    assert.equal(typeof count.count, "number");
    const fetched = await natsReq<{ data: { types: Record<string, unknown> } }>("machina.fetch.fetch", {
      source: "sitestats",
      query: "site",
      lead: { id: "example.com", args: { domain: "example.com" } },
    });
    assert.ok(fetched.data.types.website);
    const quota = await natsReq<{ source: string }>("machina.fetch.quota", { source: "sitestats" });
    assert.equal(quota.source, "sitestats");
    const ledger = await natsReq<{ name: string; leads: unknown[] }>("machina.invoke.ledger.get", { name: "websites" });
    assert.ok(ledger.leads.length >= 3);
    const built = await natsReq<{ tasks: unknown[] }>("machina.invoke.buildqueryset", {
      querySet: "websites_sitestats",
    });
    assert.ok(built.tasks.length >= 3);
    const nodes = await natsReq<{ nodes: unknown[] }>("machina.vertex.nodes", {});
    assert.ok(nodes.nodes.length >= 1);
  });

  it("parks a batch the data layer cannot store on the dead-letter stream, with its error", async () => {
    type Info = { state: { messages: number } };
    const dlqBefore = JSON.parse((await nats(["stream", "info", "MACHINA_DLQ", "--json"])).stdout) as Info;
    // Straight onto STORE: aggregate.save would refuse the undeclared type before data sees it.
    const batch = { id: "e2e-company-1", type: "company", source: "manual", records: [{ name: "ACME" }] };
    const ack = await natsReq<{ stream: string; seq: number }>("machina.task.store.company", { batches: [batch] });
    assert.equal(ack.stream, "MACHINA_STORE", "the STORE stream stored the batch");
    const after = await eventually(
      "a dead letter",
      async () => {
        const info = JSON.parse((await nats(["stream", "info", "MACHINA_DLQ", "--json"])).stdout) as Info;
        return info.state.messages > dlqBefore.state.messages ? info : undefined;
      },
      30_000,
    );
    const last = await nats(["stream", "get", "MACHINA_DLQ", String(after.state.messages), "--json"]);
    const headers = (JSON.parse(last.stdout) as { hdrs?: string }).hdrs ?? "";
    assert.match(
      Buffer.from(headers, "base64").toString(),
      /Machina-Error-Code: NOT_FOUND/,
      "the error travels with the dead letter",
    );
  });

  it("never writes an API key to a service log", async () => {
    const dir = path.join(process.env.MACHINA_STATE ?? path.join(ROOT, ".machina"), "logs");
    const secret = process.env.SITESTATS_API_KEY ?? "demo-key";
    for (const s of ["fetch", "invoke", "aggregate", "data", "compute", "vertex"]) {
      const text = await readFile(path.join(dir, `${s}.log`), "utf8");
      assert.ok(text.length > 0, `${s}.log is empty`);
      assert.ok(!text.includes(secret), `${s}.log contains the API key`);
    }
  });

  it("vertex knows every service instance", async () => {
    const list = await eventually(
      "six nodes registered",
      async () => {
        const r = await natsReq<{ nodes: Array<{ service: string; cpuCores: number }> }>("machina.vertex.nodes", {});
        return new Set(r.nodes.map((n) => n.service)).size >= 6 ? r : undefined;
      },
      20_000,
    );
    assert.ok(
      list.nodes.every((n) => n.cpuCores > 0),
      "node info carries machine facts",
    );
  });
});
