// Covers @machina/wire: content-type negotiation, body decode/encode errors and round trips, error replies, MachinaError, timing, sanitize.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { headers } from "@nats-io/nats-core";
import {
  CONTENT_TYPE_JSON,
  CONTENT_TYPE_PROTOBUF,
  ERROR_CODE_HEADER,
  ERROR_HEADER,
  ErrorCode,
  MachinaError,
  appendTiming,
  contentTypeOf,
  decodeBody,
  encodeBody,
  encodingOf,
  errorReply,
  isMachinaError,
  parseTiming,
  readErrorReply,
  sanitize,
  statusOf,
  toMachinaError,
} from "@machina/wire";
import type { Encoding } from "@machina/wire";
import type { FetchTask } from "@machina/protos";

const te = new TextEncoder();
const td = new TextDecoder();

function ct(value: string) {
  const h = headers();
  h.set("Content-Type", value);
  return h;
}

/** Runs `fn`, asserting it throws a MachinaError, and returns it. */
function machinaErr(fn: () => unknown): MachinaError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof MachinaError, `expected MachinaError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected a MachinaError to be thrown");
}

describe("encodingOf", () => {
  it("defaults to JSON when headers or Content-Type are absent", () => {
    assert.equal(encodingOf(undefined), "json");
    assert.equal(encodingOf(null), "json");
    assert.equal(encodingOf(headers()), "json");
  });

  it("recognises JSON and both protobuf content types, ignoring case and parameters", () => {
    assert.equal(encodingOf(ct("application/json")), "json");
    assert.equal(encodingOf(ct("Application/JSON; charset=utf-8")), "json");
    assert.equal(encodingOf(ct("application/x-protobuf")), "protobuf");
    assert.equal(encodingOf(ct("application/protobuf")), "protobuf");
    assert.equal(encodingOf(ct(" APPLICATION/X-PROTOBUF ;proto=machina.v1.FetchTask")), "protobuf");
  });

  it("rejects unsupported types with BAD_REQUEST naming the type and what to send", () => {
    const err = machinaErr(() => encodingOf(ct("text/plain")));
    assert.equal(err.code, "BAD_REQUEST");
    assert.equal(err.status, 400);
    assert.equal(err.retryable, false);
    assert.match(err.message, /unsupported Content-Type "text\/plain"/);
    assert.ok(err.message.includes(CONTENT_TYPE_JSON) && err.message.includes(CONTENT_TYPE_PROTOBUF));
    assert.equal(err.details.contentType, "text/plain");
  });

  it("maps encodings back to content types", () => {
    assert.equal(contentTypeOf("json"), CONTENT_TYPE_JSON);
    assert.equal(contentTypeOf("protobuf"), CONTENT_TYPE_PROTOBUF);
    for (const e of ["json", "protobuf"] as Encoding[]) assert.equal(encodingOf(ct(contentTypeOf(e))), e);
  });
});

describe("decodeBody", () => {
  it("rejects malformed JSON as a non-retryable BAD_REQUEST naming the message", () => {
    const err = machinaErr(() => decodeBody("FireRequest", te.encode("{not json"), "json"));
    assert.equal(err.code, "BAD_REQUEST");
    assert.equal(err.retryable, false);
    assert.match(err.message, /^malformed JSON for FireRequest: /);
  });

  it("rejects bytes that are not UTF-8 in JSON mode and points at the protobuf content type", () => {
    const err = machinaErr(() => decodeBody("FireRequest", new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), "json"));
    assert.equal(err.code, "BAD_REQUEST");
    assert.match(err.message, /not UTF-8/);
    assert.ok(err.message.includes(CONTENT_TYPE_PROTOBUF));
  });

  it("rejects an unknown field with details.field and details.type", () => {
    const err = machinaErr(() => decodeBody("FireRequest", te.encode(JSON.stringify({ trigerr: "x" })), "json"));
    assert.equal(err.code, "BAD_REQUEST");
    assert.equal(err.retryable, false);
    assert.deepEqual(err.details, { field: "trigerr", type: "FireRequest" });
    assert.match(
      err.message,
      /^invalid FireRequest\.trigerr: unknown field \(known fields of FireRequest: trigger, force\)/,
    );
  });

  it("reports the nested path of a wrongly typed field", () => {
    const body = te.encode(JSON.stringify({ lead: { id: 7 } }));
    const err = machinaErr(() => decodeBody("QueryRequest", body, "json"));
    assert.equal(err.details.field, "lead.id");
    assert.match(err.message, /expected a string, got number 7/);
  });

  it("rejects JSON that is not an object", () => {
    for (const text of ["[]", "42", '"x"', "null"]) {
      const err = machinaErr(() => decodeBody("FireRequest", te.encode(text), "json"));
      assert.equal(err.code, "BAD_REQUEST", text);
      assert.match(err.message, /expected a JSON object/, text);
    }
  });

  it("turns Object.prototype keys into unknown-field errors, not INTERNAL crashes", () => {
    const err = machinaErr(() => decodeBody("FireRequest", te.encode('{"constructor": {}}'), "json"));
    assert.equal(err.code, "BAD_REQUEST");
    assert.equal(err.details.field, "constructor");
  });

  it("turns malformed protobuf into BAD_REQUEST", () => {
    const err = machinaErr(() => decodeBody("QueryRequest", new Uint8Array([0x0a, 0x09, 0x61]), "protobuf"));
    assert.equal(err.code, "BAD_REQUEST");
    assert.match(err.message, /malformed protobuf/);
    assert.equal(err.details.type, "QueryRequest");
  });

  it("decodes an empty or whitespace body to the message defaults", () => {
    for (const body of [new Uint8Array(), te.encode("  \n\t ")]) {
      const r = decodeBody("FireReply", body, "json");
      assert.deepEqual(r, { trigger: "", tick: 0, tasks: 0, duplicates: 0, superseded: 0, tickId: "", state: "" });
    }
    assert.deepEqual(decodeBody("FireReply", new Uint8Array(), "protobuf"), {
      trigger: "",
      tick: 0,
      tasks: 0,
      duplicates: 0,
      superseded: 0,
      tickId: "",
      state: "",
    });
  });

  it("accepts snake_case field names in JSON", () => {
    assert.equal(decodeBody("BuildQuerySetRequest", te.encode('{"query_set": "qs"}'), "json").querySet, "qs");
  });
});

describe("encodeBody / decodeBody round trips", () => {
  const task: FetchTask = {
    id: "refresh@1700000040000/websites_sitestats/example.com/site",
    source: "sitestats",
    query: "site",
    lead: { id: "example.com", args: { domain: "example.com", tags: ["a", null], nested: { n: 1.5, ok: false } } },
    trigger: "refresh",
    tick: 1_700_000_040_000,
    createdAt: 1_700_000_041_234,
    querySet: "websites_sitestats",
  };

  for (const enc of ["json", "protobuf"] as Encoding[]) {
    it(`round-trips a FetchTask in ${enc}`, () => {
      assert.deepEqual(decodeBody("FetchTask", encodeBody("FetchTask", task, enc), enc), task);
    });

    it(`round-trips DeadLetter bytes in ${enc}`, () => {
      const payload = new Uint8Array([0, 0xfb, 0xff, 0x10, 0x7b]);
      const body = encodeBody("DeadLetter", { stream: "S", streamSeq: 9, payload }, enc);
      const back = decodeBody("DeadLetter", body, enc);
      assert.deepEqual([...back.payload], [...payload]);
      assert.equal(back.streamSeq, 9);
    });
  }

  it("writes proto3 JSON: camelCase names, Struct as plain JSON, bytes as base64", () => {
    const json = JSON.parse(td.decode(encodeBody("FetchTask", task, "json")));
    assert.equal(json.querySet, "websites_sitestats");
    assert.equal(json.query_set, undefined);
    assert.deepEqual(json.lead.args, task.lead.args);
    const dl = JSON.parse(td.decode(encodeBody("DeadLetter", { payload: new Uint8Array([1, 2, 3]) }, "json")));
    assert.equal(dl.payload, "AQID");
  });

  it("JSON and protobuf bodies are different bytes for the same value", () => {
    const j = encodeBody("FireRequest", { trigger: "t" }, "json");
    const p = encodeBody("FireRequest", { trigger: "t" }, "protobuf");
    assert.equal(td.decode(j), '{"trigger":"t","force":false}');
    assert.deepEqual([...p], [0x0a, 0x01, 0x74]);
  });
});

describe("error replies", () => {
  it("puts a one-line message in Nats-Service-Error and the status in Nats-Service-Error-Code", () => {
    const err = new MachinaError("CONFLICT", "head moved\r\nfrom abc\nto def", { details: { head: "abc" } });
    const { headers: h } = errorReply(err, "json");
    const line = h.get(ERROR_HEADER);
    assert.doesNotMatch(line, /[\r\n]/);
    assert.match(line, /head moved from abc to def/);
    assert.equal(h.get(ERROR_CODE_HEADER), "409");
    assert.equal(h.get("Content-Type"), CONTENT_TYPE_JSON);
  });

  for (const enc of ["json", "protobuf"] as Encoding[]) {
    it(`carries code, full message, retryable and details through readErrorReply (${enc})`, () => {
      const err = new MachinaError("OVER_QUOTA", "sitestats over quota\nretry later", {
        details: { source: "sitestats", retryAfterMs: 1500, windows: [{ perMs: 1000 }], nested: { ok: true } },
        retryable: false,
      });
      const reply = errorReply(err, enc);
      assert.equal(reply.headers.get("Content-Type"), contentTypeOf(enc));
      const back = readErrorReply({ headers: reply.headers, data: reply.body });
      assert.ok(back instanceof MachinaError);
      assert.equal(back.code, "OVER_QUOTA");
      assert.equal(back.status, 429);
      // the body keeps the message as thrown, newlines included; only the header is flattened
      assert.equal(back.message, "sitestats over quota\nretry later");
      assert.equal(back.retryable, false);
      assert.deepEqual(back.details, err.details);
    });
  }

  it("drops details that are not JSON-safe instead of failing the reply", () => {
    const circular: Record<string, unknown> = { a: 1 };
    circular.self = circular;
    const reply = errorReply(new MachinaError("INTERNAL", "x", { details: circular }), "json");
    assert.deepEqual(readErrorReply({ headers: reply.headers, data: reply.body })!.details, {});
    const dated = errorReply(
      new MachinaError("INTERNAL", "x", { details: { at: new Date(0), skip: undefined } }),
      "json",
    );
    assert.deepEqual(readErrorReply({ headers: dated.headers, data: dated.body })!.details, {
      at: "1970-01-01T00:00:00.000Z",
    });
  });

  it("returns null for a reply that is not an error", () => {
    assert.equal(readErrorReply({ data: te.encode("{}") }), null);
    assert.equal(readErrorReply({ headers: ct(CONTENT_TYPE_JSON), data: te.encode("{}") }), null);
  });

  it("reads a headers-only error: code from the status, message from the header, retryable by code", () => {
    const h = headers();
    h.set(ERROR_HEADER, "service unavailable");
    h.set(ERROR_CODE_HEADER, "503");
    const err = readErrorReply({ headers: h, data: new Uint8Array() })!;
    assert.equal(err.code, "UNAVAILABLE");
    assert.equal(err.message, "service unavailable");
    assert.deepEqual(err.details, {});
    // an empty body must not read as an explicit `retryable: false`
    assert.equal(err.retryable, true);
  });

  it("maps bare statuses to codes, preferring the generic code for a shared status", () => {
    const codeOf = (status: string, data = new Uint8Array()) => {
      const h = headers();
      h.set(ERROR_CODE_HEADER, status);
      return readErrorReply({ headers: h, data })!;
    };
    assert.equal(codeOf("400").code, "BAD_REQUEST");
    assert.equal(codeOf("404").code, "NOT_FOUND");
    assert.equal(codeOf("409").code, "CONFLICT");
    assert.equal(codeOf("504").code, "TIMEOUT");
    assert.equal(codeOf("418").code, "BAD_REQUEST"); // unknown 4xx
    assert.equal(codeOf("599").code, "INTERNAL"); // unknown 5xx
    assert.equal(codeOf("503").message, "error 503"); // no header text
    // a foreign text body is ignored; the headers are enough
    assert.equal(codeOf("502", te.encode("upstream went away")).code, "UPSTREAM");
    // a body code that is not one of ours keeps the status' code
    assert.equal(codeOf("500", te.encode('{"code":"toString","message":"m"}')).code, "INTERNAL");
  });

  it("takes the body's code over the status when both are present", () => {
    const reply = errorReply(new MachinaError("UNKNOWN_SOURCE", "no source nope"), "protobuf");
    const back = readErrorReply({ headers: reply.headers, data: reply.body })!;
    assert.equal(reply.headers.get(ERROR_CODE_HEADER), "404");
    assert.equal(back.code, "UNKNOWN_SOURCE");
  });

  it("survives an error reply with an unsupported Content-Type", () => {
    const h = ct("text/html");
    h.set(ERROR_CODE_HEADER, "502");
    h.set(ERROR_HEADER, "bad gateway");
    const err = readErrorReply({ headers: h, data: te.encode("<html>") })!;
    assert.equal(err.code, "UPSTREAM");
    assert.equal(err.message, "bad gateway");
  });
});

describe("MachinaError", () => {
  it("defaults retryable by code", () => {
    const retryable = new Set(["OVER_QUOTA", "UPSTREAM", "TIMEOUT", "UNAVAILABLE"]);
    for (const code of Object.values(ErrorCode)) {
      assert.equal(new MachinaError(code, "m").retryable, retryable.has(code), code);
    }
    assert.equal(new MachinaError("TIMEOUT", "m", { retryable: false }).retryable, false);
    assert.equal(new MachinaError("BAD_REQUEST", "m", { retryable: true }).retryable, true);
  });

  it("has a status for every code and HTTP-like values", () => {
    for (const code of Object.values(ErrorCode)) {
      const s = new MachinaError(code, "m").status;
      assert.equal(s, statusOf[code]);
      assert.ok(Number.isInteger(s) && s >= 400 && s < 600, `${code} → ${s}`);
    }
  });

  it("keeps details, cause and name", () => {
    const cause = new Error("root");
    const err = new MachinaError("UPSTREAM", "m", { details: { status: 502 }, cause });
    assert.equal(err.name, "MachinaError");
    assert.equal(err.cause, cause);
    assert.deepEqual(err.details, { status: 502 });
    assert.deepEqual(new MachinaError("UPSTREAM", "m").details, {});
    assert.equal("cause" in new MachinaError("UPSTREAM", "m"), false);
    assert.ok(err instanceof Error);
  });

  it("isMachinaError checks the class and optionally the code", () => {
    const err = new MachinaError("NOT_FOUND", "m");
    assert.equal(isMachinaError(err), true);
    assert.equal(isMachinaError(err, "NOT_FOUND"), true);
    assert.equal(isMachinaError(err, "UNKNOWN_SOURCE"), false);
    assert.equal(isMachinaError(new Error("m")), false);
    assert.equal(isMachinaError({ code: "NOT_FOUND" }), false);
  });

  it("toMachinaError turns a plain Error into a non-retryable INTERNAL and passes MachinaErrors through", () => {
    const plain = new TypeError("x is undefined");
    const m = toMachinaError(plain);
    assert.equal(m.code, "INTERNAL");
    assert.equal(m.status, 500);
    assert.equal(m.retryable, false);
    assert.match(m.message, /x is undefined/);
    assert.equal(m.cause, plain);
    const own = new MachinaError("CONFLICT", "c");
    assert.equal(toMachinaError(own), own);
    assert.match(toMachinaError("just a string").message, /just a string/);
    assert.equal(toMachinaError(undefined).code, "INTERNAL");
  });
});

describe("timing header", () => {
  it("appends hops in order with two decimals and parses them back", () => {
    let v = appendTiming(undefined, "fetch", 12.345);
    assert.equal(v, "fetch;dur=12.35");
    v = appendTiming(v, "aggregate", 0.5);
    v = appendTiming(v, "data.dump", 3);
    assert.equal(v, "fetch;dur=12.35, aggregate;dur=0.50, data.dump;dur=3.00");
    assert.deepEqual(parseTiming(v), [
      { hop: "fetch", ms: 12.35 },
      { hop: "aggregate", ms: 0.5 },
      { hop: "data.dump", ms: 3 },
    ]);
  });

  it("replaces characters that would break the header syntax in hop names", () => {
    const v = appendTiming("", "a b,c;d=e", 1);
    assert.equal(v, "a_b_c_d_e;dur=1.00");
    assert.deepEqual(parseTiming(v), [{ hop: "a_b_c_d_e", ms: 1 }]);
  });

  it("ignores malformed parts and empty values", () => {
    assert.deepEqual(parseTiming(undefined), []);
    assert.deepEqual(parseTiming(""), []);
    assert.deepEqual(parseTiming("garbage, ok;dur=2, x;dur=, y;dur=abc, ;dur=1"), [{ hop: "ok", ms: 2 }]);
  });
});

describe("sanitize", () => {
  it("flattens CR/LF runs to one space and drops other control characters", () => {
    assert.equal(sanitize("a\r\nb\n\nc"), "a b c");
    assert.equal(sanitize("tab\there\u0000\u007f!"), "tabhere!");
  });

  it("caps the length with an ellipsis, counting it in the cap", () => {
    const long = "x".repeat(1000);
    const s = sanitize(long);
    assert.equal(s.length, 300);
    assert.ok(s.endsWith("…"));
    assert.equal(sanitize(long, 10), `${"x".repeat(9)}…`);
    assert.equal(sanitize("x".repeat(10), 10), "x".repeat(10));
  });

  it("caps the error header of a very long message", () => {
    const { headers: h } = errorReply(new MachinaError("BAD_REQUEST", "y".repeat(5000)), "json");
    assert.equal(h.get(ERROR_HEADER).length, 300);
  });
});
