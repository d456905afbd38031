// Covers @machina/wire's header decoder: for every input it takes, the same headers nats-core's own
// decoder makes (keys, values, order, status); every input it does not take goes back to nats-core.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Match, MsgHdrsImpl } from "@nats-io/nats-core";
import { decodePlainHeaders } from "@machina/wire";

const general = (MsgHdrsImpl as unknown as { decode(a: Uint8Array): MsgHdrsImpl }).decode.bind(MsgHdrsImpl);
const bytes = (s: string) => Buffer.from(s, "latin1");

function same(text: string): MsgHdrsImpl {
  const fast = decodePlainHeaders(bytes(text));
  assert.ok(fast, `fast path declined ${JSON.stringify(text)}`);
  const want = general(bytes(text));
  assert.deepEqual([...fast], [...want], JSON.stringify(text));
  assert.equal(fast.code, want.code);
  assert.equal(fast.description, want.description);
  assert.ok(fast.equals(want));
  for (const k of want.keys()) {
    assert.equal(fast.get(k), want.get(k), `get(${k})`);
    assert.equal(fast.last(k), want.last(k));
    assert.deepEqual(fast.values(k), want.values(k));
  }
  return fast;
}

describe("fast header decoding", () => {
  it("reads what services send exactly as nats-core does", () => {
    same("NATS/1.0\r\nContent-Type: application/x-protobuf\r\nMachina-Timing: fetch;dur=0.12\r\n\r\n");
    same("NATS/1.0\r\n\r\n");
    same("NATS/1.0\r\nA: 1\r\nA: 2\r\nb:3\r\n\r\n");
    // Values are trimmed, empty values kept, a line without a colon skipped.
    same("NATS/1.0\r\nK:   spaced \t \r\nEmpty:\r\nnocolon\r\nX: a:b:c\r\n\r\n");
    // Keys stay as sent (nats-core only canonicalises on a CanonicalMIME match).
    const text = "NATS/1.0\r\ncontent-type: application/json\r\nNats-Msg-Id: abc\r\n\r\n";
    const h = same(text);
    const want = general(bytes(text));
    assert.equal(h.get("Content-Type"), "");
    assert.equal(h.get("CONTENT-TYPE", Match.IgnoreCase as "exact"), "application/json");
    for (const m of [Match.Exact, Match.CanonicalMIME, Match.IgnoreCase])
      for (const k of ["Content-Type", "content-type", "NATS-MSG-ID", "Nats-Msg-Id", "Other"]) {
        assert.equal(h.get(k, m as "exact"), want.get(k, m as "exact"), `get(${k}, ${m})`);
        assert.equal(h.has(k, m), want.has(k, m), `has(${k}, ${m})`);
      }
    // No trailing blank line (a truncated block) still reads its lines.
    same("NATS/1.0\r\nA: 1");
  });

  it("leaves status lines, non-ASCII bytes and what nats-core refuses to nats-core", () => {
    for (const text of [
      "NATS/1.0 503\r\n\r\n",
      "NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1\r\n\r\n",
      "NATS/1.0 100 Idle Heartbeat\r\n\r\n",
      "NATS/1.1\r\nA: 1\r\n\r\n",
      "NATS/1.0\r\nA: caf\u00e9\r\n\r\n",
      "NATS/1.0\r\nBad Key: 1\r\n\r\n",
      "NATS/1.0\r\n: no key\r\n\r\n",
      "NATS/1.0\r\nA: lone\nline feed\r\n\r\n",
      "NATS/1.0\r\nA: lone\rcarriage return\r\n\r\n",
      "NATS/1.0",
      "",
    ])
      assert.equal(decodePlainHeaders(bytes(text)), null, JSON.stringify(text));
  });

  it("agrees with nats-core on random ASCII header blocks", () => {
    const alphabet = "abcXYZ-_:;= \t019\r\n";
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    let taken = 0;
    for (let i = 0; i < 5000; i++) {
      let text = "NATS/1.0\r\n";
      const lines = rnd(4);
      for (let l = 0; l < lines; l++) {
        let line = "";
        for (let c = rnd(12); c > 0; c--) line += alphabet[rnd(alphabet.length)];
        text += `${line}\r\n`;
      }
      text += "\r\n";
      const fast = decodePlainHeaders(bytes(text));
      let want: MsgHdrsImpl | Error;
      try {
        want = general(bytes(text));
      } catch (err) {
        want = err as Error;
      }
      if (fast === null) continue; // nats-core decides, as it did before
      taken++;
      assert.ok(!(want instanceof Error), `fast path took what nats-core refuses: ${JSON.stringify(text)}`);
      assert.deepEqual([...fast], [...want], JSON.stringify(text));
    }
    assert.ok(taken > 1000, `only ${taken} of 5000 blocks took the fast path`);
  });
});
