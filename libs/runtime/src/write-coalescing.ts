import type { NatsConnection } from "@nats-io/nats-core";
import { encodeCommand } from "@machina/wire";

// The part of nats.js 3's protocol handler (nats-core lib/protocol.js) this relies on. It is not
// public API, so every member is checked before anything is replaced.
interface OutboundProtocol {
  outbound: { fill(buf: Uint8Array, ...payloads: Uint8Array[]): void; size(): number };
  pendingLimit: number;
  flushPending(): void;
  sendCommand(cmd: string | Uint8Array, ...payloads: Uint8Array[]): void;
}

/**
 * Makes the connection write its socket at most once per event-loop turn instead of once per
 * microtask wave; returns whether it could (false for a client that does not look like nats.js 3).
 *
 * nats.js queues a flush as a microtask when its outbound buffer turns non-empty. A service with
 * many handlers in flight resumes them in many microtask waves within one turn (each `await` is a
 * wave), and each wave's ack, publish or pull became its own socket write: a system call and a
 * loopback TCP send, paid by the sender. In the pipeline bench that was 18–34 % of the fetch,
 * invoke and aggregate processes' CPU; flushing once per turn (setImmediate, which runs right
 * after the turn's I/O) cut the whole mesh's CPU per record by 14 % and nats-server's by 37 %.
 * Order is unchanged (one buffer), a full buffer still flushes at once, and `flush()` (a PING)
 * still writes immediately.
 */
export function coalesceWrites(nc: NatsConnection): boolean {
  const proto = (nc as unknown as { protocol?: Partial<OutboundProtocol> }).protocol;
  if (
    proto === undefined ||
    typeof proto.sendCommand !== "function" ||
    typeof proto.flushPending !== "function" ||
    typeof proto.pendingLimit !== "number" ||
    typeof proto.outbound?.fill !== "function" ||
    typeof proto.outbound?.size !== "function"
  )
    return false;
  const p = proto as OutboundProtocol;
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    p.flushPending();
  };
  p.sendCommand = (cmd, ...payloads) => {
    p.outbound.fill(encodeCommand(cmd), ...payloads);
    if (p.outbound.size() >= p.pendingLimit) p.flushPending();
    else if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
  return true;
}
