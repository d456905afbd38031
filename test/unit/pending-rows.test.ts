import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CLEAN_ORDER, DUMP_ORDER, mergePending, pendingView, type PendingView, type RowView } from "@machina/data";

const ENTITY = 'ks.dump_site\u0000{"domain":"a.com"}';
const DAYS = new Set(["2026-12-01", "2026-12-02"]);

function dumpRow(day: string, at: number, source: string, title: string | null, seq = 0): Map<string, unknown> {
  return new Map<string, unknown>([
    ["domain", "a.com"],
    ["day", day],
    ["fetched_at", new Date(at)],
    ["source", source],
    ["query", "q"],
    ["seq", seq],
    ["title", title],
  ]);
}

const asRow = (m: ReadonlyMap<string, unknown>): RowView => ({ get: (c) => m.get(c) ?? null });

async function* stored(rows: ReadonlyMap<string, unknown>[]): AsyncGenerator<RowView> {
  for (const r of rows) yield asRow(r);
}

async function merged(rows: ReadonlyMap<string, unknown>[], pending: PendingView[], days = DAYS) {
  const out: { at: number; source: string; title: unknown }[] = [];
  for await (const r of mergePending(stored(rows), pending, days, DUMP_ORDER)) {
    out.push({ at: (r.get("fetched_at") as Date).getTime(), source: String(r.get("source")), title: r.get("title") });
  }
  return out;
}

describe("reads through a replica see its queued writes", () => {
  const t = Date.UTC(2026, 11, 2, 10);
  const day = "2026-12-02";
  const older = [dumpRow(day, t - 2000, "s1", "stored-2"), dumpRow(day, t - 4000, "s1", "stored-4")];

  it("puts queued rows in the store's order among stored ones (newest first)", async () => {
    const q = [
      pendingView(ENTITY, DUMP_ORDER, dumpRow(day, t, "s1", "queued-0")),
      pendingView(ENTITY, DUMP_ORDER, dumpRow(day, t - 3000, "s1", "queued-3")),
    ];
    assert.deepEqual(
      (await merged(older, q)).map((r) => r.title),
      ["queued-0", "stored-2", "queued-3", "stored-4"],
    );
  });

  it("shows a queued write of a stored row once, with the queued columns over the stored ones", async () => {
    const over = dumpRow(day, t - 2000, "s1", "rewritten");
    over.set("title", undefined); // unset: the stored value stays
    const set = dumpRow(day, t - 4000, "s1", "rewritten-4");
    const out = await merged(older, [pendingView(ENTITY, DUMP_ORDER, over), pendingView(ENTITY, DUMP_ORDER, set)]);
    assert.deepEqual(
      out.map((r) => r.title),
      ["stored-2", "rewritten-4"],
    );
  });

  it("a queued delete of a day hides its stored rows and earlier queued ones, not later ones", async () => {
    const del: PendingView = { entity: ENTITY, id: "", day, columns: null };
    const before = pendingView(ENTITY, DUMP_ORDER, dumpRow(day, t, "s1", "before-delete"));
    const after = pendingView(ENTITY, DUMP_ORDER, dumpRow(day, t - 1000, "s2", "after-delete"));
    const otherDay = [dumpRow("2026-12-01", t - 86_400_000, "s1", "yesterday")];
    const out = await merged([...older, ...otherDay], [before, del, after]);
    assert.deepEqual(
      out.map((r) => r.title),
      ["after-delete", "yesterday"],
    );
  });

  it("leaves out queued rows on days outside the read's horizon", async () => {
    const far = pendingView(ENTITY, DUMP_ORDER, dumpRow("2026-10-01", t - 60 * 86_400_000, "s1", "too-old"));
    assert.deepEqual(
      (await merged(older, [far])).map((r) => r.title),
      ["stored-2", "stored-4"],
    );
  });

  it("a full-row write replaces the stored row; a partial one adds provenance entries", async () => {
    const ws = new Date(t);
    const base = new Map<string, unknown>([
      ["bucket", day],
      ["window_start", ws],
      ["title", "merged"],
      ["rank", 3],
      ["provenance", { title: "s1", rank: "s1" }],
    ]);
    const partial = new Map<string, unknown>([
      ["bucket", day],
      ["window_start", ws],
      ["title", "edited"],
      ["rank", undefined],
      ["provenance", { title: "manual" }],
    ]);
    const run = async (views: PendingView[]) => {
      const out: RowView[] = [];
      for await (const r of mergePending(stored([base]), views, DAYS, CLEAN_ORDER)) out.push(r);
      return out.map((r) => ({ title: r.get("title"), rank: r.get("rank"), provenance: r.get("provenance") }));
    };
    assert.deepEqual(await run([pendingView(ENTITY, CLEAN_ORDER, partial)]), [
      { title: "edited", rank: 3, provenance: { title: "manual", rank: "s1" } },
    ]);
    const full = new Map(partial);
    full.set("rank", null);
    full.set("provenance", { title: "s2" });
    assert.deepEqual(await run([pendingView(ENTITY, CLEAN_ORDER, full, true)]), [
      { title: "edited", rank: null, provenance: { title: "s2" } },
    ]);
  });
});
