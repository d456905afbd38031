import { test } from "node:test";
import assert from "node:assert/strict";
import {
  cleanTableSpec,
  compileTypeDef,
  createKeyspaceCql,
  createTableCql,
  cleanFailedTableSpec,
  dirtyCursorTableSpec,
  dirtyMarksTableSpec,
  dumpTableSpec,
  ensureSchema,
} from "@machina/data";
import { isMachinaError } from "@machina/wire";

const def = compileTypeDef(
  {
    name: "website",
    key: ["domain", "lang"],
    fields: { domain: "text", lang: "text", rank: "int", visits: "bigint", meta: "json", updated_at: "timestamp" },
    dump_ttl: "30d",
  },
  "website.yaml",
);

const flat = (s: string): string => s.replace(/\s+/g, " ");

test("dump table: entity+day partition, newest fetch first, TTL and time-window compaction", () => {
  const cql = flat(createTableCql("ks", dumpTableSpec(def)));
  assert.match(cql, /^CREATE TABLE IF NOT EXISTS ks\.dump_website \(/);
  assert.ok(cql.includes(`PRIMARY KEY (("domain", "lang", "day"), "fetched_at", "source", "query", "seq")`), cql);
  assert.ok(cql.includes(`CLUSTERING ORDER BY ("fetched_at" DESC, "source" ASC, "query" ASC, "seq" ASC)`), cql);
  const legacy = flat(createTableCql("ks", dumpTableSpec(def, { legacy: true })));
  assert.ok(legacy.includes(`PRIMARY KEY (("domain", "lang", "day"), "fetched_at", "source", "query")`), legacy);
  assert.ok(cql.includes(`"task_id" text`));
  assert.ok(cql.includes(`"visits" bigint`));
  assert.ok(cql.includes(`"meta" text`), "json is stored as text");
  assert.ok(cql.includes("default_time_to_live = 2592000"));
  assert.ok(cql.includes("'class': 'TimeWindowCompactionStrategy'"));
  assert.ok(cql.includes("'compaction_window_unit': 'DAYS', 'compaction_window_size': '1'"), cql);
});

test("clean table: entity+bucket partition, newest window first, merge bookkeeping", () => {
  const cql = flat(createTableCql("ks", cleanTableSpec(def)));
  assert.ok(cql.includes(`PRIMARY KEY (("domain", "lang", "bucket"), "window_start")`), cql);
  assert.ok(cql.includes(`CLUSTERING ORDER BY ("window_start" DESC)`));
  for (const c of [`"merged_at" timestamp`, `"sources" int`, `"provenance" map<text, text>`, `"rank" int`]) {
    assert.ok(cql.includes(c), `${c} missing from ${cql}`);
  }
  assert.equal(cql.includes("default_time_to_live"), false);
});

test("dirty, cursor and failed tables and the keyspace use only portable CQL", () => {
  const cql = flat(createTableCql("ks", dirtyMarksTableSpec()));
  // A slot in the partition key: closed slots are dropped whole instead of row by row.
  assert.ok(cql.includes(`PRIMARY KEY (("type", "shard", "slot"), "key", "window_start", "id")`), cql);
  assert.ok(cql.includes(`"id" uuid`), cql);
  assert.ok(flat(createTableCql("ks", dirtyCursorTableSpec())).includes(`PRIMARY KEY (("type", "shard"))`));
  assert.ok(
    flat(createTableCql("ks", cleanFailedTableSpec())).includes(`PRIMARY KEY (("type"), "key", "window_start")`),
  );
  assert.equal(
    createKeyspaceCql("ks", { datacenter1: 3, dc2: 1 }),
    "CREATE KEYSPACE IF NOT EXISTS ks WITH replication = {'class': 'NetworkTopologyStrategy', 'datacenter1': 3, 'dc2': 1}",
  );
});

test("the keyspace follows the name rule, checked before any statement", async () => {
  // The client is never reached: the keyspace is refused first.
  for (const [keyspace, hint] of [
    ["Machina", 'write "machina"'],
    ["machina-it", 'write "machina_it"'],
    ["k".repeat(43), "42"],
  ]) {
    await assert.rejects(ensureSchema(undefined as never, keyspace, { datacenter1: 1 }, [def]), (e) => {
      assert.ok(isMachinaError(e, "BAD_REQUEST"), String(e));
      assert.match(e.message, /^keyspace: /);
      assert.ok(e.message.includes(hint), e.message);
      return true;
    });
  }
});
