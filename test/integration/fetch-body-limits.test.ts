import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, beforeEach, describe, it } from "node:test";
import zlib from "node:zlib";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { compileSource, createFetcher, openLimiter, type Fetcher, type Limiter, type SourceDef } from "@machina/fetch";
import { MachinaError } from "@machina/wire";

const NATS_URL = process.env.MACHINA_NATS_URL ?? "nats://127.0.0.1:4222";
const BUCKET = `fetch_body_limits_test_${process.pid}_${Date.now()}`;
const KB = 1024;
const MB = 1024 * KB;

const RECORDS = {
  items: [
    { id: "a", n: 1 },
    { id: "b", n: 2 },
  ],
};
const JSON_TEXT = JSON.stringify(RECORDS);

// Writes `total` bytes of a JSON string in 64 KB chunks, without a content-length, and notes
// whether the client hung up before the end: the proof that the body was not read whole.
function stream(res: ServerResponse, total: number, cut: { early: boolean }): void {
  res.setHeader("content-type", "application/json");
  const chunk = Buffer.alloc(64 * KB, "x");
  let sent = 0;
  res.on("close", () => {
    cut.early = !res.writableFinished;
  });
  res.write('{"items":[],"pad":"');
  const pump = () => {
    while (sent < total) {
      sent += chunk.length;
      if (!res.write(chunk)) return void res.once("drain", pump);
    }
    res.end('"}');
  };
  pump();
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

function encoded(encoding: string, body: Buffer): Buffer {
  if (encoding === "gzip") return zlib.gzipSync(body);
  if (encoding === "deflate") return zlib.deflateSync(body);
  if (encoding === "deflate-raw") return zlib.deflateRawSync(body);
  return zlib.brotliCompressSync(body);
}

function files(baseUrl: string): SourceDef {
  const q = (path: string, extra: Record<string, unknown> = {}) => ({
    path,
    extract: { items: { type: "item", path: "items" } },
    ...extra,
  });
  return compileSource(
    {
      name: "files",
      limiter: "unlimited",
      manager: { type: "http", base_url: baseUrl, retries: { max: 2, base_delay: "1ms" }, max_body: "256KB" },
      queries: {
        small_cap: q("/big", { max_body: "64KB" }),
        source_cap: q("/big"),
        stream_cap: q("/stream", { max_body: "64KB" }),
        bomb: q("/bomb", { max_body: "1MB" }),
        encoded: q("/encoded"),
        ndjson_by_type: q("/ndjson", { extract: { items: { type: "item", path: "." } } }),
        ndjson_declared: q("/ndjson-text", {
          format: "ndjson",
          extract: { items: { type: "item", path: "$[?(@.n > 1)]" } },
        }),
        ndjson_bad: q("/ndjson-bad", { extract: { items: { type: "item", path: "." } } }),
        json_forced: q("/ndjson", { format: "json" }),
      },
    },
    "sources/files.yaml",
  );
}

function defaultCapped(baseUrl: string): SourceDef {
  return compileSource(
    {
      name: "plain",
      limiter: "unlimited",
      manager: { type: "http", base_url: baseUrl, retries: { max: 0 } },
      queries: { huge: { path: "/huge", extract: { items: { type: "item", path: "items" } } } },
    },
    "sources/plain.yaml",
  );
}

async function failure(p: Promise<unknown>): Promise<MachinaError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof MachinaError, `expected MachinaError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected the fetch to fail");
}

describe("fetch response bodies: size cap, compression, NDJSON", () => {
  let nc: NatsConnection;
  let server: Server;
  let limiter: Limiter;
  let fetcher: Fetcher;
  let hits: Record<string, number> = {};
  let acceptEncoding: string | undefined;
  let encoding = "gzip";
  let handlers: Record<string, Handler> = {};
  const streamCut = { early: false };
  const lead = { id: "l", args: {} };

  before(async () => {
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    // 64 MB of zeros inside about 64 KB of gzip: what a small cap must stop.
    const bomb = zlib.gzipSync(
      Buffer.concat([Buffer.from('{"items":[],"pad":"'), Buffer.alloc(64 * MB, "0"), Buffer.from('"}')]),
    );
    handlers = {
      "/big": (_req, res) => {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ items: [], pad: "x".repeat(300 * KB) }));
      },
      "/stream": (_req, res) => stream(res, 50 * MB, streamCut),
      "/huge": (_req, res) => stream(res, 11 * MB, { early: false }),
      "/bomb": (_req, res) => {
        res.setHeader("content-type", "application/json");
        res.setHeader("content-encoding", "gzip");
        res.end(bomb);
      },
      "/encoded": (_req, res) => {
        res.setHeader("content-type", "application/json");
        if (encoding === "corrupt") {
          res.setHeader("content-encoding", "gzip");
          res.end(Buffer.from("this is not gzip at all"));
          return;
        }
        if (encoding === "empty") {
          res.setHeader("content-encoding", "gzip");
          res.end();
          return;
        }
        if (encoding === "zstd") {
          res.setHeader("content-encoding", "zstd");
          res.end(Buffer.from("whatever"));
          return;
        }
        res.setHeader("content-encoding", encoding === "deflate-raw" ? "deflate" : encoding);
        res.end(encoded(encoding, Buffer.from(JSON_TEXT)));
      },
      "/ndjson": (_req, res) => {
        res.setHeader("content-type", "application/x-ndjson");
        res.end('{"id":"a","n":1}\n{"id":"b","n":2}\n\n');
      },
      "/ndjson-text": (_req, res) => {
        res.setHeader("content-type", "text/plain");
        res.end('{"id":"a","n":1}\r\n{"id":"b","n":2}\r\n{"id":"c","n":3}');
      },
      "/ndjson-bad": (_req, res) => {
        res.setHeader("content-type", "application/x-ndjson");
        res.end('{"id":"a"}\n{"id":\n');
      },
    };
    server = createServer((req, res) => {
      const path = req.url ?? "";
      hits[path] = (hits[path] ?? 0) + 1;
      acceptEncoding = req.headers["accept-encoding"];
      const h = handlers[path];
      if (h === undefined) res.writeHead(404).end();
      else h(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const defs = [files(base), defaultCapped(base)];
    limiter = await openLimiter(nc, { bucket: BUCKET, sources: defs });
    fetcher = createFetcher({ sources: defs, limiter, env: {} });
  });

  beforeEach(() => {
    hits = {};
    encoding = "gzip";
  });

  after(async () => {
    await limiter?.close();
    await new Promise<void>((resolve) => {
      server?.close(() => resolve());
      server?.closeAllConnections();
    });
    if (nc !== undefined) await (await new Kvm(nc).open(BUCKET)).destroy().catch(() => undefined);
    await nc?.close();
  });

  it("refuses a body over the query's cap, naming source, query, cap and how to raise it, without retrying", async () => {
    const err = await failure(fetcher.fetch({ source: "files", query: "small_cap", lead }));
    assert.equal(err.code, "UPSTREAM");
    assert.equal(err.retryable, false);
    assert.equal(
      err.message,
      "source files, query small_cap: the answer to GET /big is larger than the 64KB body cap (set by queries.small_cap.max_body); raise max_body on queries.small_cap (or manager.max_body for every query) in sources/files.yaml, e.g. max_body: 128KB, or ask for less per page",
    );
    assert.equal(err.details.maxBytes, 64 * KB);
    assert.equal(err.details.query, "small_cap");
    assert.equal(hits["/big"], 1);
  });

  it("falls back to manager.max_body, then to the 10MB default", async () => {
    const err = await failure(fetcher.fetch({ source: "files", query: "source_cap", lead }));
    assert.match(err.message, /larger than the 256KB body cap \(set by manager\.max_body\)/);
    const dflt = await failure(fetcher.fetch({ source: "plain", query: "huge", lead }));
    assert.match(dflt.message, /^source plain, query huge: .* larger than the 10MB body cap \(set by the default\)/);
  });

  it("stops reading a streamed body at the cap instead of buffering it", async () => {
    streamCut.early = false;
    const err = await failure(fetcher.fetch({ source: "files", query: "stream_cap", lead }));
    assert.match(err.message, /larger than the 64KB body cap/);
    // The server had 50 MB to send; the client hung up long before.
    for (let i = 0; i < 50 && !streamCut.early; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(streamCut.early, true);
  });

  it("caps the decoded size of a compressed body: a gzip bomb is cut off", async () => {
    const err = await failure(fetcher.fetch({ source: "files", query: "bomb", lead }));
    assert.equal(err.code, "UPSTREAM");
    assert.equal(err.retryable, false);
    assert.match(err.message, /larger than the 1MB body cap once gzip-decoded \(set by queries\.bomb\.max_body\)/);
    assert.equal(err.details.encoding, "gzip");
    assert.equal(hits["/bomb"], 1);
  });

  for (const enc of ["gzip", "deflate", "deflate-raw", "br"]) {
    it(`decodes a ${enc} body`, async () => {
      encoding = enc;
      const res = await fetcher.fetch({ source: "files", query: "encoded", lead });
      assert.deepEqual(res.data, { item: RECORDS.items });
      assert.equal(acceptEncoding, "gzip, deflate, br");
    });
  }

  it("takes an empty body labelled gzip as empty, not as corrupt gzip", async () => {
    encoding = "empty";
    const res = await fetcher.fetch({ source: "files", query: "encoded", lead });
    assert.deepEqual(res.data, { item: [] });
  });

  it("fails clearly on a corrupt or unasked-for encoding", async () => {
    encoding = "corrupt";
    const bad = await failure(fetcher.fetch({ source: "files", query: "encoded", lead }));
    assert.equal(bad.code, "UPSTREAM");
    assert.equal(bad.retryable, false);
    assert.match(bad.message, /^source files answered GET \/encoded with a body that could not be gzip-decoded \(/);
    encoding = "zstd";
    const odd = await failure(fetcher.fetch({ source: "files", query: "encoded", lead }));
    assert.match(odd.message, /could not be zstd-decoded \(not one of gzip, deflate, br, which were asked for\)/);
  });

  it("reads NDJSON by its content-type, one record per line", async () => {
    const res = await fetcher.fetch({ source: "files", query: "ndjson_by_type", lead });
    assert.deepEqual(res.data, {
      item: [
        { id: "a", n: 1 },
        { id: "b", n: 2 },
      ],
    });
  });

  it("reads NDJSON when the query declares it, whatever the content-type, and selects with JSONPath", async () => {
    const res = await fetcher.fetch({ source: "files", query: "ndjson_declared", lead });
    assert.deepEqual(res.data, {
      item: [
        { id: "b", n: 2 },
        { id: "c", n: 3 },
      ],
    });
  });

  it("names the NDJSON line that is not JSON, and honours a declared json format", async () => {
    const err = await failure(fetcher.fetch({ source: "files", query: "ndjson_bad", lead }));
    assert.equal(err.code, "UPSTREAM");
    assert.match(
      err.message,
      /with HTTP 200 but an NDJSON body whose line 2 is not JSON \(content-type application\/x-ndjson\)/,
    );
    const forced = await failure(fetcher.fetch({ source: "files", query: "json_forced", lead }));
    assert.match(forced.message, /but a body that is not JSON/);
  });
});
