import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { connect as tcpConnect, createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { NATS_URL, uniquePrefix } from "../support/nats-env";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy";

async function startEchoServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const open = new Set<Socket>();
  const server: Server = createServer((socket) => {
    open.add(socket);
    socket.on("close", () => open.delete(socket));
    socket.on("error", () => undefined);
    socket.pipe(socket);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of open) socket.destroy();
      }),
  };
}

async function openClient(port: number): Promise<Socket> {
  const socket = tcpConnect({ host: "127.0.0.1", port });
  // cutAll resets every client the proxy holds, including other tests' idle ones.
  socket.on("error", () => undefined);
  await once(socket, "connect");
  return socket;
}

// Resolves with everything `socket` receives once `length` bytes have arrived.
function readBytes(socket: Socket, length: number, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => {
      socket.off("data", onData);
      reject(new Error(`got ${size} of ${length} bytes within ${timeoutMs} ms`));
    }, timeoutMs);
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= length) {
        clearTimeout(timer);
        socket.off("data", onData);
        resolve(Buffer.concat(chunks));
      }
    };
    socket.on("data", onData);
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

describe("tcp proxy against an echo server", () => {
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let proxy: TcpProxy;
  const sockets: Socket[] = [];
  before(async () => {
    echo = await startEchoServer();
    proxy = await startTcpProxy({ targetPort: echo.port, delayMs: 100 });
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await proxy.close();
    await echo.close();
  });

  it("delays each direction, so a round trip takes at least twice the delay", async () => {
    proxy.setDelay(100);
    const client = await openClient(proxy.port);
    sockets.push(client);
    const started = performance.now();
    client.write("ping");
    const answer = await readBytes(client, 4);
    const elapsed = performance.now() - started;
    assert.equal(answer.toString(), "ping");
    assert.ok(elapsed >= 200, `round trip took ${elapsed.toFixed(1)} ms`);
  });

  it("keeps bytes intact and in order across many writes while the delay changes", async () => {
    const client = await openClient(proxy.port);
    sockets.push(client);
    const sent: Buffer[] = [];
    let total = 0;
    for (let i = 0; i < 80; i += 1) sent.push(randomBytes(1 + ((i * 7919) % 16_384)));
    for (const chunk of sent) total += chunk.length;
    const received = readBytes(client, total);
    for (let i = 0; i < sent.length; i += 1) {
      // Long then zero delays: a later chunk would overtake an earlier one if queues were not ordered.
      proxy.setDelay(i % 4 === 0 ? 80 : 0);
      client.write(sent[i]);
      // Pauses make the proxy read chunks separately rather than as one coalesced buffer.
      if (i % 3 === 0) await delay(5);
    }
    const got = await received;
    assert.equal(got.length, total);
    assert.ok(got.equals(Buffer.concat(sent)), "echoed bytes differ from what was sent");
    proxy.setDelay(100);
  });

  it("cutAll ends the client's socket, drops queued data and keeps accepting", async () => {
    proxy.setDelay(100);
    const client = await openClient(proxy.port);
    sockets.push(client);
    client.write("one");
    assert.equal((await readBytes(client, 3)).toString(), "one");
    let late = "";
    client.on("data", (chunk: Buffer) => (late += chunk.toString()));
    client.write("queued");
    // Not events.once: it rejects on the "error" a reset brings, and a reset is an acceptable way to end.
    const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
    proxy.cutAll();
    await withTimeout(closed, 2_000, "client close after cutAll");
    await delay(250);
    assert.equal(late, "", "data queued at the cut must not arrive");

    const again = await openClient(proxy.port);
    sockets.push(again);
    again.write("two");
    assert.equal((await readBytes(again, 3)).toString(), "two");
  });

  it("rejects a negative or non-finite delay", () => {
    assert.throws(() => proxy.setDelay(-1), RangeError);
    assert.throws(() => proxy.setDelay(Number.NaN), RangeError);
    assert.throws(() => proxy.setDelay(Number.POSITIVE_INFINITY), RangeError);
  });
});

describe("tcp proxy in front of nats-server", () => {
  const target = new URL(NATS_URL);
  let proxy: TcpProxy;
  let direct: NatsConnection;
  let slow: NatsConnection | undefined;
  const subject = `${uniquePrefix("proxy")}.echo`;

  before(async () => {
    proxy = await startTcpProxy({ targetHost: target.hostname, targetPort: Number(target.port || 4222), delayMs: 50 });
    direct = await connect({ servers: NATS_URL });
    direct.subscribe(subject, {
      callback: (_err, msg) => {
        msg.respond(msg.data);
      },
    });
    await direct.flush();
  });
  after(async () => {
    await slow?.close();
    await direct?.close();
    await proxy?.close();
  });

  it("makes flush and request round trips take at least twice the delay, and reconnects after cutAll", async () => {
    slow = await connect({ servers: `127.0.0.1:${proxy.port}`, reconnectTimeWait: 100 });
    const delayMs = 150;
    proxy.setDelay(delayMs);

    let started = performance.now();
    await slow.flush();
    const flushMs = performance.now() - started;
    assert.ok(flushMs >= 2 * delayMs, `flush took ${flushMs.toFixed(1)} ms`);

    started = performance.now();
    const reply = await slow.request(subject, "hello", { timeout: 5_000 });
    const requestMs = performance.now() - started;
    assert.equal(reply.string(), "hello");
    assert.ok(requestMs >= 2 * delayMs, `request took ${requestMs.toFixed(1)} ms`);

    // The client must notice the cut and come back through the proxy on its own.
    const seen: string[] = [];
    const conn = slow;
    const reconnected = (async () => {
      for await (const status of conn.status()) {
        seen.push(status.type);
        if (status.type === "reconnect") return;
      }
    })();
    proxy.setDelay(0);
    proxy.cutAll();
    await withTimeout(reconnected, 10_000, "reconnect after cutAll");
    assert.ok(seen.includes("disconnect"), `statuses: ${seen.join(", ")}`);
    assert.equal((await slow.request(subject, "again", { timeout: 5_000 })).string(), "again");
  });
});
