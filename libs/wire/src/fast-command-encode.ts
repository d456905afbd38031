import { ProtocolHandler } from "@nats-io/nats-core/internal";

// nats-core turns every protocol line it sends (`PUB <subject> <reply> <size>`, `HPUB …`, an ack's
// `PUB $JS.ACK…`) into bytes with a TextEncoder: about 0.6 µs for a 70-character line on Node 20,
// where Buffer.from makes the same UTF-8 bytes in about 0.12 µs. Every request, reply, publish and
// ack pays it once. The handler's own sendCommand accepts bytes as well as text, so the override
// only encodes first and leaves buffering and flushing to nats-core.

let installed = false;

/** Bytes of a protocol line, as nats-core's encoder makes them (UTF-8), by the faster Buffer.from. */
export function encodeCommand(cmd: string | Uint8Array): Uint8Array {
  return typeof cmd === "string" ? Buffer.from(cmd, "utf8") : cmd;
}

/**
 * Makes every nats-core connection of this process encode its protocol lines with Buffer.from
 * instead of a TextEncoder; idempotent; false when nats-core's handler does not have the shape
 * relied on (nothing is changed then).
 */
export function useFastCommandEncoding(): boolean {
  if (installed) return true;
  const proto = (ProtocolHandler as unknown as { prototype?: { sendCommand?: unknown } }).prototype;
  const general = proto?.sendCommand;
  if (typeof general !== "function") return false;
  proto!.sendCommand = function sendCommand(this: unknown, cmd: string | Uint8Array, ...payloads: Uint8Array[]) {
    return (general as (...a: unknown[]) => unknown).call(this, encodeCommand(cmd), ...payloads);
  };
  installed = true;
  return true;
}
