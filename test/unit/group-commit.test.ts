import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { GroupCommit, groupMsgId } from "@machina/runtime";
import { MachinaError } from "@machina/wire";

const tick = () => new Promise<void>((r) => setImmediate(r));

describe("GroupCommit", () => {
  it("stores items handed in during one turn as one group, and resolves each once it is stored", async () => {
    const groups: number[][] = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const gc = new GroupCommit<number>({
      async flush(items) {
        groups.push(items);
        await gate;
      },
    });
    let resolved = 0;
    const all = [1, 2, 3, 4, 5].map((n) => gc.add(n).then(() => resolved++));
    await tick();
    await tick();
    assert.deepEqual(groups, [[1, 2, 3, 4, 5]]);
    assert.equal(resolved, 0, "nothing resolves before its group is stored");
    release();
    await Promise.all(all);
    assert.equal(resolved, 5);
  });

  it("lets items wait while maxInFlight groups are being stored, then stores them as one bigger group", async () => {
    const groups: number[][] = [];
    const releases: (() => void)[] = [];
    const gc = new GroupCommit<number>({
      maxInFlight: 1,
      flush(items) {
        groups.push(items);
        return new Promise<void>((r) => releases.push(r));
      },
    });
    const first = gc.add(0);
    await tick();
    const rest = [1, 2, 3].map((n) => gc.add(n));
    await tick();
    assert.deepEqual(groups, [[0]], "the second group waits for the first");
    assert.equal(gc.waiting, 3);
    releases[0]();
    await first;
    await tick();
    assert.deepEqual(groups, [[0], [1, 2, 3]]);
    releases[1]();
    await Promise.all(rest);
  });

  it("caps a group at maxItems", async () => {
    const sizes: number[] = [];
    const gc = new GroupCommit<number>({
      maxItems: 4,
      maxInFlight: 8,
      async flush(items) {
        sizes.push(items.length);
      },
    });
    await Promise.all(Array.from({ length: 10 }, (_, i) => gc.add(i)));
    assert.deepEqual(sizes, [4, 4, 2]);
  });

  it("retries a group that failed for good item by item, so only the bad item fails", async () => {
    const calls: number[][] = [];
    const gc = new GroupCommit<number>({
      async flush(items) {
        calls.push(items);
        if (items.includes(3)) throw new MachinaError("BAD_REQUEST", "item 3 is bad", { retryable: false });
      },
    });
    const outcomes = await Promise.allSettled([1, 2, 3, 4].map((n) => gc.add(n)));
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ["fulfilled", "fulfilled", "rejected", "fulfilled"],
    );
    assert.match(String((outcomes[2] as PromiseRejectedResult).reason), /item 3 is bad/);
    assert.deepEqual(calls, [[1, 2, 3, 4], [1], [2], [3], [4]]);
  });

  it("rejects every item of a group that failed with a retryable error, without storing them one by one", async () => {
    let calls = 0;
    const gc = new GroupCommit<number>({
      async flush() {
        calls++;
        throw new MachinaError("UNAVAILABLE", "cassandra is down", { details: { dependency: "cassandra" } });
      },
    });
    const outcomes = await Promise.allSettled([1, 2, 3].map((n) => gc.add(n)));
    assert.ok(outcomes.every((o) => o.status === "rejected" && /cassandra is down/.test(String(o.reason))));
    assert.equal(calls, 1, "an outage is not retried item by item");
  });

  it("keeps working after a failed group", async () => {
    let fail = true;
    const stored: number[] = [];
    const gc = new GroupCommit<number>({
      async flush(items) {
        if (fail) throw new MachinaError("UNAVAILABLE", "down");
        stored.push(...items);
      },
    });
    await assert.rejects(gc.add(1), /down/);
    fail = false;
    await gc.add(2);
    assert.deepEqual(stored, [2]);
  });
});

describe("groupMsgId", () => {
  it("keeps a single item's id and gives different groups different ids", () => {
    assert.equal(groupMsgId(["t1"]), "t1");
    const ab = groupMsgId(["a", "b"]);
    assert.equal(ab, groupMsgId(["a", "b"]), "deterministic");
    assert.notEqual(ab, groupMsgId(["b", "a"]));
    assert.notEqual(ab, groupMsgId(["a", "b", "c"]));
    assert.notEqual(groupMsgId(["a", "bc"]), groupMsgId(["ab", "c"]), "ids are separated, not concatenated");
  });
});
