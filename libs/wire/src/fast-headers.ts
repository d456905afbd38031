import { MsgHdrsImpl } from "@nats-io/nats-core";
import type { Match } from "@nats-io/nats-core";

const CR_OR_LF = /[\r\n]/;

/**
 * Headers built once from known keys, encoded without the generic path: nats-core's `set()`
 * canonicalises and searches the keys on every call and `encode()` walks the map, which cost
 * several µs per reply. A real MsgHdrsImpl underneath, so every reader and every mutation (which
 * drops the cached bytes) behave as nats-core's own.
 */
export class FixedHeaders extends MsgHdrsImpl {
  private bytes: Uint8Array | undefined;

  /** `entries`: [key, value] pairs with canonical keys; a value with CR or LF is refused, as nats-core does. */
  constructor(entries: readonly (readonly [string, string])[]) {
    super();
    let text = "NATS/1.0";
    for (const [k, v] of entries) {
      if (CR_OR_LF.test(v)) throw new TypeError(`header ${k}: values cannot contain \\r or \\n`);
      const value = v.trim();
      const vs = this.headers.get(k);
      if (vs) vs.push(value);
      else this.headers.set(k, [value]);
      text += `\r\n${k}: ${value}`;
    }
    // Buffer.from is several times faster than TextEncoder for short strings (Node 20).
    this.bytes = Buffer.from(`${text}\r\n\r\n`, "utf8");
  }

  override encode(): Uint8Array {
    return (this.bytes ??= super.encode());
  }

  override set(k: string, v: string, match?: Match): void {
    this.bytes = undefined;
    super.set(k, v, match);
  }

  override append(k: string, v: string, match?: Match): void {
    this.bytes = undefined;
    super.append(k, v, match);
  }

  override delete(k: string, match?: Match): void {
    this.bytes = undefined;
    super.delete(k, match);
  }
}
