import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, beforeEach, describe, it } from "node:test";
import { BodyTooLargeError, sendRequest, UpstreamTimeoutError, type UpstreamRequest } from "@machina/fetch";

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}

// A real server whose handler each test sets; it records what arrived.
describe("upstream HTTP client against a local server", () => {
  let server: Server;
  let base: string;
  let seen: Seen[] = [];
  let handle: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();

  before(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        seen.push({
          method: req.method ?? "",
          url: req.url ?? "",
          headers: req.headers,
          body: Buffer.concat(chunks).toString("utf8"),
        });
        handle(req, res);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  });

  beforeEach(() => {
    seen = [];
    handle = (_req, res) => res.end();
  });

  const send = (path: string, extra: Partial<UpstreamRequest> = {}) =>
    sendRequest({ method: "GET", url: new URL(base + path), headers: {}, timeoutMs: 2_000, ...extra });

  it("sends a GET with its headers and query string as given", async () => {
    handle = (_req, res) => {
      res.setHeader("content-type", "application/json");
      res.end('{"ok":true}');
    };
    const url = new URL(`${base}/v1/sites/a%20b`);
    url.searchParams.set("page", "2");
    url.searchParams.set("q", "x&y");
    const res = await sendRequest({
      method: "GET",
      url,
      headers: { accept: "application/json", "X-Api-Key": "k-123" },
      timeoutMs: 2_000,
    });
    assert.equal(res.status, 200);
    assert.equal(res.text, '{"ok":true}');
    assert.equal(res.headers.get("content-type"), "application/json");
    assert.equal(seen.length, 1);
    assert.equal(seen[0].method, "GET");
    assert.equal(seen[0].url, "/v1/sites/a%20b?page=2&q=x%26y");
    assert.equal(seen[0].headers["x-api-key"], "k-123");
    assert.equal(seen[0].headers.accept, "application/json");
    assert.equal(seen[0].headers.host, new URL(base).host);
    assert.equal(seen[0].headers["content-length"], undefined);
    // Bodies are decoded (body-reader.ts), so every request offers the encodings it can undo.
    assert.equal(seen[0].headers["accept-encoding"], "gzip, deflate, br");
    assert.equal(seen[0].body, "");
  });

  it("sends a POST body with its content-length in bytes", async () => {
    const body = JSON.stringify({ name: "café", n: 1 });
    const res = await send("/v1/search", { method: "POST", headers: { "content-type": "application/json" }, body });
    assert.equal(res.status, 200);
    assert.equal(seen[0].method, "POST");
    assert.equal(seen[0].body, body);
    assert.equal(seen[0].headers["content-length"], String(Buffer.byteLength(body)));
    assert.notEqual(Buffer.byteLength(body), body.length, "the body has a multi-byte character");
    assert.equal(seen[0].headers["content-type"], "application/json");
  });

  it("exposes response headers as Headers, joining a repeated one", async () => {
    handle = (_req, res) => {
      res.writeHead(200, [
        ["X-RateLimit-Remaining", "7"],
        ["X-Multi", "a"],
        ["X-Multi", "b"],
        ["Content-Type", "text/plain; charset=utf-8"],
      ]);
      res.end("héllo");
    };
    const res = await send("/h");
    assert.ok(res.headers instanceof Headers);
    assert.equal(res.headers.get("x-ratelimit-remaining"), "7");
    assert.equal(res.headers.get("X-Multi"), "a, b");
    assert.equal(res.headers.get("absent"), null);
    assert.equal(res.text, "héllo");
  });

  it("passes 429 with Retry-After through", async () => {
    handle = (_req, res) => {
      res.writeHead(429, { "retry-after": "3" });
      res.end('{"error":"slow down"}');
    };
    const res = await send("/limited");
    assert.equal(res.status, 429);
    assert.equal(res.headers.get("retry-after"), "3");
    assert.equal(res.text, '{"error":"slow down"}');
  });

  it("does not follow a redirect", async () => {
    handle = (req, res) => {
      if (req.url === "/old") {
        res.writeHead(302, { location: "/new" });
        res.end();
      } else res.end("followed");
    };
    const res = await send("/old");
    assert.equal(res.status, 302);
    assert.equal(res.headers.get("location"), "/new");
    assert.deepEqual(
      seen.map((s) => s.url),
      ["/old"],
    );
  });

  it("times out with a TimeoutError when the server stalls before answering", async () => {
    handle = () => undefined;
    const t0 = performance.now();
    await assert.rejects(send("/stall", { timeoutMs: 150 }), (err: Error) => {
      assert.equal(err.name, "TimeoutError");
      assert.ok(err instanceof UpstreamTimeoutError);
      return true;
    });
    const took = performance.now() - t0;
    assert.ok(took >= 140 && took < 1_500, `took ${took} ms`);
  });

  it("times out when the body stalls after the headers: the deadline covers the whole exchange", async () => {
    handle = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"partial":');
    };
    await assert.rejects(send("/half", { timeoutMs: 150 }), { name: "TimeoutError" });
  });

  it("rejects with the socket's code when nothing listens", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await assert.rejects(
      sendRequest({ method: "GET", url: new URL(`http://127.0.0.1:${port}/x`), headers: {}, timeoutMs: 2_000 }),
      { code: "ECONNREFUSED" },
    );
  });

  it("rejects with a code when the server drops the connection mid-body", async () => {
    handle = (_req, res) => {
      res.writeHead(200, { "content-length": "100" });
      res.write("short");
      setTimeout(() => res.socket?.destroy(), 20);
    };
    await assert.rejects(send("/cut"), (err: Error & { code?: string }) => {
      assert.equal(typeof err.code, "string", String(err));
      return true;
    });
  });

  it("refuses a body larger than the cap, declared or streamed", async () => {
    const big = "x".repeat(10_000);
    handle = (req, res) => {
      if (req.url === "/chunked") {
        res.write(big.slice(0, 6_000));
        setTimeout(() => res.end(big.slice(6_000)), 10);
      } else res.end(big);
    };
    for (const path of ["/declared", "/chunked"]) {
      await assert.rejects(send(path, { maxBytes: 8_192 }), (err: Error) => {
        assert.ok(err instanceof BodyTooLargeError, `${path}: ${String(err)}`);
        assert.equal(err.maxBytes, 8_192);
        assert.match(err.message, /exceeded 8192 bytes/);
        return true;
      });
    }
    // At the cap exactly is fine.
    assert.equal((await send("/declared", { maxBytes: 10_000 })).text.length, 10_000);
  });

  it("reuses one keep-alive connection for sequential requests", async () => {
    // A server of its own, so no socket left from the other tests counts.
    const own = createServer((req, res) => {
      req.resume();
      req.on("end", () => res.end("{}"));
    });
    let connections = 0;
    own.on("connection", () => connections++);
    await new Promise<void>((resolve) => own.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(own.address() as AddressInfo).port}`;
    try {
      for (const [method, path] of [
        ["GET", "/a"],
        ["POST", "/b"],
        ["GET", "/c"],
      ]) {
        const body = method === "POST" ? "{}" : undefined;
        const res = await sendRequest({ method, url: new URL(url + path), headers: {}, body, timeoutMs: 2_000 });
        assert.equal(res.text, "{}");
      }
      assert.equal(connections, 1);
    } finally {
      await new Promise<void>((resolve) => {
        own.close(() => resolve());
        own.closeAllConnections();
      });
    }
  });
});
