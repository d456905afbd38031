import { createServer, connect, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

/** Options for {@link startTcpProxy}. */
export interface TcpProxyOptions {
  /** Host to forward to. Default `127.0.0.1`. */
  targetHost?: string;
  /** Port to forward to. */
  targetPort: number;
  /** Initial one-way delay applied to every chunk in both directions, in ms. Default 0. */
  delayMs?: number;
}

/** A running delay proxy and its fault controls. */
export interface TcpProxy {
  /** The port the proxy listens on, on 127.0.0.1. */
  readonly port: number;
  /** Change the one-way delay for chunks that arrive from now on; throws RangeError unless a finite ms >= 0. */
  setDelay(ms: number): void;
  /** Destroy every open connection pair at once, dropping data still queued; keeps listening. */
  cutAll(): void;
  /** Stop listening and destroy every connection; safe to call twice. */
  close(): Promise<void>;
}

// "destroy" carries an abortive close of the source side, so the far side learns of it after the same delay.
type Item =
  { dueMs: number; kind: "data"; chunk: Buffer } | { dueMs: number; kind: "end" } | { dueMs: number; kind: "destroy" };

/** One direction of a proxied connection: everything read from `from` reaches `to` delayed, in order. */
class DelayedPipe {
  private readonly queue: Item[] = [];
  private timer: NodeJS.Timeout | undefined;
  private paused = false;
  private cancelled = false;

  constructor(
    private readonly from: Socket,
    private readonly to: Socket,
    private readonly delayMs: () => number,
  ) {
    from.on("data", (chunk: Buffer) => this.enqueue({ dueMs: 0, kind: "data", chunk }));
    from.on("end", () => this.enqueue({ dueMs: 0, kind: "end" }));
    // A clean close needs nothing more: its FIN already came through as "end".
    from.on("close", (hadError) => {
      if (hadError) this.enqueue({ dueMs: 0, kind: "destroy" });
    });
  }

  /** Drop whatever is queued and ignore whatever comes later. */
  cancel(): void {
    this.cancelled = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
  }

  private enqueue(item: Item): void {
    if (this.cancelled) return;
    const now = performance.now();
    item.dueMs = now + this.delayMs();
    this.queue.push(item);
    if (this.queue.length === 1 && item.dueMs <= now) this.flush();
    else this.schedule();
  }

  private schedule(): void {
    if (this.timer !== undefined || this.queue.length === 0) return;
    const wait = Math.max(0, Math.ceil(this.queue[0].dueMs - performance.now()));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, wait);
  }

  private flush(): void {
    // Only the head is ever sent, so after a lowered delay a later chunk waits behind earlier ones
    // instead of overtaking them. Re-reading the clock guards against timers firing a little early.
    while (this.queue.length > 0 && this.queue[0].dueMs <= performance.now()) {
      this.deliver(this.queue.shift() as Item);
    }
    this.schedule();
  }

  private deliver(item: Item): void {
    if (item.kind === "destroy") {
      this.to.destroy();
      return;
    }
    if (this.to.destroyed) return;
    if (item.kind === "end") {
      this.to.end();
      return;
    }
    if (!this.to.write(item.chunk) && !this.paused) {
      // Backpressure from the receiver stops reading the sender instead of buffering without bound.
      this.paused = true;
      this.from.pause();
      this.to.once("drain", () => {
        this.paused = false;
        this.from.resume();
      });
    }
  }
}

function checkDelay(ms: number): number {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
    throw new RangeError(`tcp-proxy delay must be a finite number of ms >= 0, got ${String(ms)}`);
  }
  return ms;
}

/** Start a TCP proxy on 127.0.0.1 that forwards to a target with an adjustable delay; resolves once listening. */
export async function startTcpProxy(opts: TcpProxyOptions): Promise<TcpProxy> {
  const targetHost = opts.targetHost ?? "127.0.0.1";
  if (!Number.isInteger(opts.targetPort) || opts.targetPort < 1 || opts.targetPort > 65535) {
    throw new RangeError(`tcp-proxy targetPort must be 1-65535, got ${String(opts.targetPort)}`);
  }
  let delayMs = checkDelay(opts.delayMs ?? 0);
  const currentDelay = (): number => delayMs;
  const pairs = new Set<{ sockets: Socket[]; pipes: DelayedPipe[] }>();

  // Half-open sockets let a FIN travel through the delay like data instead of closing both directions at once.
  const server = createServer({ allowHalfOpen: true }, (client) => {
    const upstream = connect({ host: targetHost, port: opts.targetPort, allowHalfOpen: true });
    const pair = {
      sockets: [client, upstream],
      pipes: [new DelayedPipe(client, upstream, currentDelay), new DelayedPipe(upstream, client, currentDelay)],
    };
    pairs.add(pair);
    let open = 2;
    for (const socket of pair.sockets) {
      // The "close" that follows an error is what tears down the far side; without a listener the error would crash the process.
      socket.on("error", () => undefined);
      socket.on("close", () => {
        open -= 1;
        if (open === 0) pairs.delete(pair);
      });
    }
  });

  const cutAll = (): void => {
    for (const pair of [...pairs]) {
      for (const pipe of pair.pipes) pipe.cancel();
      for (const socket of pair.sockets) socket.destroy();
      pairs.delete(pair);
    }
  };

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });

  let closing: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
    setDelay: (ms: number) => {
      delayMs = checkDelay(ms);
    },
    cutAll,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        cutAll();
      });
      return closing;
    },
  };
}
